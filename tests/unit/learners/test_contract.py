"""Contract suite over every learner, in the spirit of River's ``checks/``."""

from __future__ import annotations

import copy
import json
import math
import random
from collections import Counter
from typing import Any

import pytest

from learners import Learner, from_params
from learners.batch import Batch
from tests.unit.learners.cases import CASES, HOUR_MS, Case

T0 = 1_735_689_600_000  # a window end, epoch ms


def _fed(case: Case, seed: int = 11, n_batches: int = 3) -> tuple[Learner, list[Batch]]:
    rng = random.Random(seed)
    learner = case.make(seed)
    batches = [Batch(tuple(case.rows(rng)), window_end=T0 + i * HOUR_MS) for i in range(n_batches)]
    for b in batches:
        learner.update(b)
    return learner, batches


def _choices(learner: Learner, case: Case, n: int = 50, seed: int = 5) -> list[tuple[Any, float]]:
    rng = random.Random(seed)
    arms = case.arms + case.unseen
    return [learner.choose(case.context(rng), arms) for _ in range(n)]


def _close(a: Any, b: Any, rel: float = 1e-9) -> bool:
    """Structural equality with float tolerance (batch sums may add in a different order)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k], rel) for k in a)
    if isinstance(a, list):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(_close(x, y, rel) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)
    return bool(a == b)


ids = [c.name for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_params_round_trip_exactly(case: Case) -> None:
    learner, _ = _fed(case)
    params = learner.to_params()
    wire = json.dumps(params, separators=(",", ":"), allow_nan=False)  # JSON-safe
    restored = from_params(json.loads(wire))
    assert type(restored) is type(learner)
    assert restored.to_params() == params
    assert json.dumps(restored.to_params(), separators=(",", ":")) == wire
    # Same params and seed: the restored learner chooses exactly as the original.
    again = type(learner).from_params(json.loads(wire), seed=11)
    assert _choices(again, case) == _choices(type(learner).from_params(params, seed=11), case)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_params_are_versioned(case: Case) -> None:
    learner, batches = _fed(case)
    params = learner.to_params()
    assert params["v"] == 1
    assert params["learner"] == type(learner).__name__
    assert params["version"] == len(batches)
    with pytest.raises(ValueError, match="params\\['v'\\]"):
        type(learner).from_params(params | {"v": 99})
    with pytest.raises(ValueError, match="learner"):
        type(learner).from_params(params | {"learner": "Other"})


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_batch_update_equals_sequential_updates(case: Case) -> None:
    rng = random.Random(3)
    windows = [(T0, case.rows(rng, 10)), (T0 + HOUR_MS, case.rows(rng, 10))]
    batched, sequential = case.make(1), case.make(1)
    for window_end, rows in windows:
        batched.update(Batch(tuple(rows), window_end=window_end))
        for row in rows:
            sequential.update(Batch((row,), window_end=window_end))
    a, b = batched.to_params(), sequential.to_params()
    assert a.pop("version") == 2 and b.pop("version") == 20
    assert _close(a, b)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_deterministic_under_a_seed(case: Case) -> None:
    one, _ = _fed(case, seed=21)
    two, _ = _fed(case, seed=21)
    assert one.to_params() == two.to_params()
    assert _choices(one, case) == _choices(two, case)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_no_generator_state_in_params(case: Case) -> None:
    learner, _ = _fed(case)
    before = learner.to_params()
    _choices(learner, case, n=20)
    assert learner.to_params() == before  # choosing changes nothing that is published
    assert len(json.dumps(before)) < 20_000


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_unseen_arms(case: Case) -> None:
    fresh = case.make(0)
    rng = random.Random(0)
    arm, p = fresh.choose(case.context(rng), case.unseen + case.arms)  # nothing learned yet
    assert arm in case.unseen + case.arms and 0 < p <= 1
    learner, _ = _fed(case)
    for _ in range(20):
        arm, p = learner.choose(case.context(rng), case.arms + case.unseen)
        assert arm in case.arms + case.unseen and 0 < p <= 1
    arm, p = learner.choose(case.context(rng), case.unseen)  # only unseen arms on offer
    assert arm in case.unseen and 0 < p <= 1
    # Learning about a new arm later works too.
    learner.update(Batch((case.row(rng, case.unseen[0]),), window_end=T0 + 5 * HOUR_MS))
    assert case.unseen[0] in json.dumps(learner.to_params())


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_inputs_not_mutated(case: Case) -> None:
    rng = random.Random(4)
    learner = case.make(2)
    rows = case.rows(rng)
    batch = Batch(tuple(rows), window_end=T0)
    batch_copy = copy.deepcopy(batch)
    learner.update(batch)
    assert batch == batch_copy
    params = learner.to_params()
    params_copy = copy.deepcopy(params)
    restored = type(learner).from_params(params)
    restored.update(Batch(tuple(case.rows(rng)), window_end=T0 + HOUR_MS))
    assert params == params_copy  # from_params does not alias its input
    published = learner.to_params()
    published["config"]["mutated"] = True
    assert "mutated" not in learner.to_params()["config"]  # nor does to_params alias the state
    context, arms = case.context(rng), case.arms + case.unseen
    context_copy, arms_copy = copy.deepcopy(context), list(arms)
    learner.choose(context, arms)
    assert context == context_copy and arms == arms_copy


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_propensity_is_the_choice_frequency(case: Case) -> None:
    """For a fixed state and context, each arm comes back with one propensity, at that frequency."""
    learner, _ = _fed(case)
    context = case.context(random.Random(8))
    arms = case.arms + case.unseen
    n = 3000
    picks: Counter[Any] = Counter()
    props: dict[Any, set[float]] = {}
    for _ in range(n):
        arm, p = learner.choose(context, arms)
        picks[arm] += 1
        props.setdefault(arm, set()).add(p)
    for arm, ps in props.items():
        assert len(ps) == 1, f"{arm!r} came back with several propensities {ps}"
        p = ps.pop()
        sd = math.sqrt(p * (1 - p) / n)
        assert abs(picks[arm] / n - p) <= 5 * sd + 1e-9, (arm, picks[arm] / n, p)
    assert sum(picks.values()) == n


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_choose_rejects_empty_arms(case: Case) -> None:
    learner, _ = _fed(case)
    with pytest.raises(ValueError, match="arms"):
        learner.choose(case.context(random.Random(0)), [])


def test_late_batch_is_discounted_like_an_on_time_one() -> None:
    """With a half-life, the order in which windows arrive does not change the state."""
    case = next(c for c in CASES if c.name == "ts_beta_discounted")
    rng = random.Random(9)
    early, late = tuple(case.rows(rng)), tuple(case.rows(rng))
    in_order, out_of_order = case.make(0), case.make(0)
    in_order.update(Batch(early, window_end=T0))
    in_order.update(Batch(late, window_end=T0 + 3 * HOUR_MS))
    out_of_order.update(Batch(late, window_end=T0 + 3 * HOUR_MS))
    out_of_order.update(Batch(early, window_end=T0))
    a, b = in_order.to_params(), out_of_order.to_params()
    by_arm_a = dict(zip(a["arms"], a["stats"], strict=True))
    by_arm_b = dict(zip(b["arms"], b["stats"], strict=True))
    # Discounted evidence is rounded to nine significant digits, so the order shows at that level.
    assert _close(by_arm_a, by_arm_b, rel=1e-8) and a["t"] == b["t"]


@pytest.mark.parametrize("case", [c for c in CASES if c.row.__name__ == "_bandit_row"], ids=lambda c: c.name)
def test_non_contextual_params_take_at_most_64_bytes_per_arm(case: Case) -> None:
    """Ten creatives with realistic ids, a day of hourly batches with fractional conversion credit."""
    rng = random.Random(6)
    arms = [f"c00-cr{i}" for i in range(10)]
    empty = case.make(0)
    learner = case.make(0)
    for hour in range(24):
        learner.update(Batch(tuple(case.row(rng, arm) for arm in arms), window_end=T0 + hour * HOUR_MS))
    size = len(json.dumps(learner.to_params(), separators=(",", ":")))
    per_arm = (size - len(json.dumps(empty.to_params(), separators=(",", ":")))) / len(arms)
    assert per_arm <= 64, per_arm
