"""The serving protocol's JSON schemas against what the learners and the store really write."""

from __future__ import annotations

import json
import random

import pytest

from contract.serving import notification_errors, params_errors, record_errors
from learners import SegmentAgent
from learners.batch import Batch
from state.codec import Notification, PolicyRecord, encode_record
from tests.unit.learners.cases import CASES, HOUR_MS

T0 = 1_735_689_600_000


def _params(case, seed: int = 3) -> dict:
    rng = random.Random(seed)
    learner = case.make(seed)
    for i in range(3):
        learner.update(Batch(tuple(case.rows(rng)), window_end=T0 + i * HOUR_MS))
    return json.loads(json.dumps(learner.to_params()))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_learners_params_and_record_conform(case) -> None:
    params = _params(case)
    assert params_errors(params) == []
    record = PolicyRecord.from_params("c01", "creative", params, updated_at_ms=T0)
    doc = json.loads(encode_record(record))
    assert record_errors(doc) == []
    assert notification_errors(json.loads(Notification.of(record).to_json())) == []


def test_segment_agent_with_centroids_conforms() -> None:
    rng = random.Random(0)
    agent = SegmentAgent(3, warmup=30, seed=1)
    agent.update(
        Batch.from_rows([], samples=[[rng.gauss(c, 0.1), rng.gauss(c, 0.1)] for c in (0, 3, 6)] * 20)
    )
    params = json.loads(json.dumps(agent.to_params()))
    assert params["centroids"] is not None and params_errors(params) == []


@pytest.mark.parametrize(
    "change",
    [
        {"v": 2},
        {"version": -1},
        {"arms": "a"},
        {"stats": [["x"]]},
        {"t": "now"},
    ],
)
def test_broken_params_are_named(change) -> None:
    params = {**_params(CASES[0]), **change}
    assert params_errors(params)


def test_a_record_without_params_or_with_a_colon_in_the_agent_fails() -> None:
    doc = json.loads(
        encode_record(PolicyRecord.from_params("c01", "bid", _params(CASES[0]), updated_at_ms=T0))
    )
    assert record_errors({k: v for k, v in doc.items() if k != "params"})
    assert record_errors({**doc, "agent": "a:b"})


def test_rollback_records_and_rollout_notifications_conform() -> None:
    params = {
        "learner": "UCB",
        "v": 1,
        "version": 9,
        "t": None,
        "config": {},
        "arms": ["a"],
        "stats": [[1, 0]],
    }
    record = PolicyRecord("c01", "creative", 9, "UCB", 1, params, T0, republished_from=3, rolled_back_from=8)
    assert record_errors(json.loads(encode_record(record))) == []
    assert notification_errors(json.loads(Notification("c01", "creative", 10, T0, "rollout").to_json())) == []
    assert notification_errors({"campaign": "c", "agent": "a", "version": 1, "updated_at": 0, "kind": "x"})
