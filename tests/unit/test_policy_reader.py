"""A reader of the published JSON written from the documented math alone (tests/reference/
policy_reader.py) gives the choice probabilities the serving client serves (the learners' own,
rebuilt from the same params) for Thompson sampling and LinUCB."""

from __future__ import annotations

import random

import pytest

from learners import LinUCB, ThompsonSampling
from learners.batch import Batch
from state.codec import PolicyRecord, encode_record
from tests.reference.policy_reader import lin_ucb_probabilities, read_record, thompson_probabilities
from tests.unit.learners.cases import CASES, FEATURES

T0 = 1_735_689_600_000
ARMS = ["cr0", "cr1", "cr2", 3, "new"]


def _published(case_name: str, seed: int) -> tuple[object, str]:
    case = next(c for c in CASES if c.name == case_name)
    rng = random.Random(seed)
    learner = case.make(seed)
    for i in range(4):
        learner.update(Batch(tuple(case.rows(rng, 12)), window_end=T0 + i * 60_000))
    record = PolicyRecord.from_params("c01", "creative", learner.to_params(), updated_at_ms=T0)
    return learner, encode_record(record)


@pytest.mark.parametrize("case_name", ["ts_beta", "ts_gaussian", "ts_beta_discounted"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_thompson_probabilities_from_the_json_alone(case_name: str, seed: int) -> None:
    learner, text = _published(case_name, seed)
    assert isinstance(learner, ThompsonSampling)
    mine = thompson_probabilities(read_record(text), ARMS)
    theirs = learner.probabilities(ARMS)
    bound = learner.propensity_error_bound + 1e-6  # the client's quantile grid; the reader's quadrature
    assert all(abs(mine[a] - theirs[a]) <= bound for a in ARMS), (mine, theirs, bound)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_lin_ucb_choice_from_the_json_alone(seed: int) -> None:
    learner, text = _published("lin_ucb", seed)
    assert isinstance(learner, LinUCB)
    rng = random.Random(seed)
    for _ in range(20):
        x = [rng.uniform(-1, 1) for _ in FEATURES]
        mine = lin_ucb_probabilities(read_record(text), x, ARMS)
        arm, p = learner.choose({"features": x}, ARMS)
        assert mine[arm] == pytest.approx(p), (mine, arm, p)
