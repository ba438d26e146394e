"""Each expectation flags exactly the partition that breaks it, under its own name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from quality.check import RewardBounds, check_partition
from quality.expectations import ID_COLUMNS

from .partitions import FIRST_INITIAL, FIRST_V1, FIRST_V2, valid_rows, write_partition

Rows = list[dict[str, Any]]

EXPECTED_NAMES = [
    *(f"{c}_not_null" for c in ID_COLUMNS),
    "conversion_id_not_null_when_delayed",
    "reward_within_bounds",
    "propensity_in_(0,1]",
    "kind_in_set",
    "agent_in_set",
    "credits_sum_to_conversion_value",
    "unique_decision_kind_conversion",
    "reward_ts_in_partition_hour",
]


def _set(index: int, **fields: Any) -> Callable[[Rows], None]:
    def mutate(rows: Rows) -> None:
        rows[index].update(fields)

    return mutate


def _duplicate(index: int) -> Callable[[Rows], None]:
    def mutate(rows: Rows) -> None:
        rows.append(dict(rows[index]))

    return mutate


# One case per expectation; each breaks that expectation and nothing else.
BROKEN = {
    **{f"{c}_not_null": _set(FIRST_INITIAL, **{c: None}) for c in ID_COLUMNS},
    # v2 has a single touch, so dropping its id leaves no other conversion's sum short.
    "conversion_id_not_null_when_delayed": _set(FIRST_V2, conversion_id=None),
    "reward_within_bounds": _set(FIRST_INITIAL, reward=5_000.0),
    "propensity_in_(0,1]": _set(FIRST_INITIAL, propensity=0.0),
    "kind_in_set": _set(FIRST_INITIAL, kind="final"),
    "agent_in_set": _set(FIRST_INITIAL, agent="pricing"),
    "credits_sum_to_conversion_value": _set(FIRST_V1, credit=15.0 * 1.01),
    "unique_decision_kind_conversion": _duplicate(FIRST_INITIAL),
    "reward_ts_in_partition_hour": _set(FIRST_INITIAL, reward_ts=valid_rows()[0]["reward_ts"] + 3_600_000),
}


def _check(tmp_path: Path, rows: Rows, **options: Any):
    return check_partition(write_partition(tmp_path, rows), **options)


def test_valid_partition_passes_every_expectation(tmp_path):
    report = _check(tmp_path, valid_rows())
    assert report.success, report.line()
    assert report.names() == EXPECTED_NAMES
    assert report.rows == 18
    assert report.line().startswith("OK")


def test_every_expectation_has_a_breaking_case():
    assert sorted(BROKEN) == sorted(EXPECTED_NAMES)


@pytest.mark.parametrize("name", EXPECTED_NAMES)
def test_breaking_one_expectation_fails_only_that_one(tmp_path, name):
    rows = valid_rows()
    BROKEN[name](rows)
    report = _check(tmp_path, rows)
    assert [o.name for o in report.failed] == [name]
    failed = report.outcome(name)
    assert failed.examples, "a failing expectation shows at least one failing row"
    assert "unexpected" in failed.observed
    assert name in report.line() and report.line().startswith("FAILED")


def test_failing_example_names_the_row(tmp_path):
    rows = valid_rows()
    BROKEN["propensity_in_(0,1]"](rows)
    outcome = _check(tmp_path, rows).outcome("propensity_in_(0,1]")
    assert outcome.examples == (
        {"decision_id": "i1:creative", "kind": "initial", "conversion_id": None, "propensity": 0.0},
    )
    assert outcome.expectation_type == "expect_column_values_to_be_between"


@pytest.mark.parametrize(
    "propensity, ok", [(1.0, True), (1e-9, True), (0.0, False), (1.5, False), (-0.1, False)]
)
def test_propensity_is_in_half_open_unit_interval(tmp_path, propensity, ok):
    rows = valid_rows()
    rows[FIRST_INITIAL]["propensity"] = propensity
    assert _check(tmp_path, rows).outcome("propensity_in_(0,1]").success is ok


def test_reward_bounds_are_configurable(tmp_path):
    rows = valid_rows()
    rows[FIRST_INITIAL]["reward"] = 5_000.0
    assert _check(tmp_path, rows, bounds=RewardBounds(-10_000, 10_000)).success
    # The valid partition has credits of 15 and 10: a tight upper bound catches them.
    tight = _check(tmp_path, valid_rows(), bounds=RewardBounds(-1, 1)).outcome("reward_within_bounds")
    assert not tight.success and tight.observed.startswith("9 of 18")


def test_credit_sum_uses_a_relative_tolerance(tmp_path):
    rows = valid_rows()
    rows[FIRST_V1]["credit"] *= 1 + 1e-9
    assert _check(tmp_path, rows).success
    assert not _check(tmp_path, rows, credit_rel_tol=1e-12).success


def test_credit_sum_fails_a_delayed_row_without_conversion_value(tmp_path):
    rows = valid_rows()
    rows[FIRST_V2]["conversion_value"] = None
    assert [o.name for o in _check(tmp_path, rows).failed] == ["credits_sum_to_conversion_value"]


def test_credit_sum_is_per_agent(tmp_path):
    # Moving credit between two agents' rows of the same conversion keeps the total but breaks both.
    rows = valid_rows()
    rows[FIRST_V1]["credit"] += 1.0  # creative on i1
    rows[FIRST_V1 + 1]["credit"] -= 1.0  # bid on i1
    outcome = _check(tmp_path, rows).outcome("credits_sum_to_conversion_value")
    assert not outcome.success
    assert {e["agent"] for e in outcome.examples} == {"creative", "bid"}


def test_delayed_rows_of_different_conversions_are_not_duplicates(tmp_path):
    rows = valid_rows()
    second = dict(rows[FIRST_V2], conversion_id="v3")
    rows.append(second)
    report = _check(tmp_path, rows)
    assert report.outcome("unique_decision_kind_conversion").success


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError, match="reward bounds"):
        RewardBounds(10, -10)
    with pytest.raises(ValueError, match="credit_rel_tol"):
        from quality.expectations import SuiteConfig

        SuiteConfig(credit_rel_tol=-1)
