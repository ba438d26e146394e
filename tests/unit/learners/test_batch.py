"""The micro-batch contract: building, merging and validating aggregates."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from learners.batch import ArmStats, Batch


def test_from_events_separates_initial_and_delayed_rewards() -> None:
    events = [
        {"arm": "a", "reward": 1.0, "propensity": 0.5, "cost": 0.2, "context": {"x": 2.0, "y": 1.0}},
        {"arm": "a", "reward": 0.0, "propensity": 0.25, "cost": 0.1, "context": {"x": 1.0, "y": 0.0}},
        {"arm": "a", "reward": 0.5, "propensity": 0.5, "delayed": True, "context": {"x": 2.0, "y": 1.0}},
        {"arm": "b", "reward": 1.0, "state": "s1", "context": {"x": 0.0, "y": 1.0}},
    ]
    batch = Batch.from_events(events, features=["x", "y"], window_end=99)
    a, b = batch.rows
    assert (a.trials, a.reward_sum, a.reward_sq_sum, a.delayed_sum) == (2.0, 1.0, 1.0, 0.5)
    assert a.ipw_reward_sum == 1.0 / 0.5 + 0.5 / 0.5
    assert a.cost_sum == pytest.approx(0.3)
    assert a.xx == (5.0, 2.0, 2.0, 1.0)  # initial rows only
    assert a.rx == (2.0 + 1.0, 1.0 + 0.5)  # initial and delayed rows
    assert (b.state, b.trials, b.dim) == ("s1", 1.0, 2)
    assert batch.window_end == 99


def test_rows_of_the_same_state_and_arm_are_merged() -> None:
    batch = Batch.from_rows(
        [
            {"arm": "a", "trials": 2, "reward_sum": 1, "xx": [[1, 0], [0, 1]], "rx": [1, 0]},
            {"arm": "a", "trials": 3, "reward_sum": 2, "xx": [1, 1, 1, 1], "rx": [0, 1]},
            {"arm": "a", "state": "other", "trials": 1},
        ]
    )
    assert len(batch) == 2
    merged = batch.rows[0]
    assert (merged.trials, merged.reward_sum, merged.xx, merged.rx) == (
        5.0,
        3.0,
        (2.0, 1.0, 1.0, 2.0),
        (1.0, 1.0),
    )


def test_from_arrow_and_to_rows_round_trip() -> None:
    rows = [
        {"arm": "a", "state": "", "trials": 4.0, "reward_sum": 1.0, "reward_sq_sum": 1.0, "delayed_sum": 0.0,
         "ipw_reward_sum": 2.0, "cost_sum": 0.5, "wins": 3.0, "xx": None, "rx": None},
        {"arm": "b", "state": "", "trials": 1.0, "reward_sum": 0.0, "reward_sq_sum": 0.0, "delayed_sum": 0.25,
         "ipw_reward_sum": 0.5, "cost_sum": 0.0, "wins": 0.0, "xx": None, "rx": None},
    ]  # fmt: skip
    batch = Batch.from_arrow(pa.Table.from_pylist(rows), window_end=5)
    assert batch.to_rows() == rows
    assert json.loads(json.dumps(batch.to_rows())) == rows  # JSON-safe


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arm": "a", "trials": -1}, "trials"),
        ({"arm": "a", "reward_sum": float("nan")}, "reward_sum must be a finite number"),
        ({"arm": 1.5}, "arm must be a str or int"),
        ({"arm": "a", "xx": (1.0,)}, "xx and rx must be given together"),
        ({"arm": "a", "xx": (1.0, 2.0), "rx": (1.0, 2.0)}, "d\\*d=4"),
    ],
)
def test_bad_rows_raise_value_errors_naming_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ArmStats(**kwargs)


def test_unknown_fields_and_bad_propensities_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown field"):
        Batch.from_rows([{"arm": "a", "clicks": 3}])
    with pytest.raises(ValueError, match="propensity must be in"):
        Batch.from_events([{"arm": "a", "reward": 1.0, "propensity": 0.0}])


def test_update_rejects_a_non_batch() -> None:
    from learners import ThompsonSampling

    with pytest.raises(ValueError, match="expected a Batch"):
        ThompsonSampling().update([{"arm": "a"}])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("ThompsonSampling(dist='poisson')", "dist must be"),
        ("ThompsonSampling(prior_alpha=0)", "prior_alpha must be > 0"),
        ("UCB(delta=-1)", "delta must be >= 0"),
        ("EpsilonGreedy(1.5)", "epsilon must be in"),
        ("Exp3(0.0)", "gamma must be in"),
        ("LinUCB([])", "features must be"),
        ("BidAgent(['1'], budget=0)", "budget must be > 0"),
        ("BudgetPacer(10.0, n_blocks=0)", "n_blocks must be"),
        ("UCB(half_life_ms=0)", "half_life_ms must be"),
        ("UCB(seed='x')", "seed must be"),
    ],
)
def test_config_errors_name_the_parameter(make: str, message: str) -> None:
    import learners

    with pytest.raises(ValueError, match=message):
        eval(make, vars(learners))
