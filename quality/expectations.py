"""The expectation suite for one ad.rewards partition.

Most checks are Great Expectations built-ins. The credit check needs a derived column first,
computed by ``derive``: ``credit_rel_error``, for each delayed row the relative gap between the
summed credit of its (conversion_id, agent) and its conversion_value. Delayed rows carry
reward_ts = conversion time, so every row of one conversion lands in the same partition and the
sum is complete here.

Every expectation carries its check name in ``meta["check"]``; reports and Data Docs use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import great_expectations as gx
import great_expectations.expectations as gxe
import numpy as np
import pandas as pd

from attribution.config import AGENTS

ID_COLUMNS = ("decision_id", "impression_id", "agent", "campaign_id", "action", "kind")
KINDS = ("initial", "delayed")
DEFAULT_CREDIT_REL_TOL = 1e-6

CREDIT_REL_ERROR = "credit_rel_error"
HOUR_START = "hour_start_ms"
HOUR_END = "hour_end_ms"

# Columns handed to GE: the checked ones plus what makes a failing example readable.
_SUITE_COLUMNS = (
    *ID_COLUMNS,
    "conversion_id",
    "propensity",
    "reward",
    "credit",
    "conversion_value",
    "reward_ts",
)


@dataclass(frozen=True)
class RewardBounds:
    """Inclusive bounds a reward must lie in; a reward outside means a weight or unit bug upstream."""

    low: float = -1000.0
    high: float = 1000.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.low) and np.isfinite(self.high) and self.low <= self.high):
            raise ValueError(
                f"reward bounds: expected finite low <= high; got low={self.low!r}, high={self.high!r}"
            )


@dataclass(frozen=True)
class SuiteConfig:
    bounds: RewardBounds = RewardBounds()  # frozen, so a shared default is safe
    credit_rel_tol: float = DEFAULT_CREDIT_REL_TOL

    def __post_init__(self) -> None:
        if not (np.isfinite(self.credit_rel_tol) and self.credit_rel_tol >= 0):
            raise ValueError(f"credit_rel_tol: expected a finite number >= 0; got {self.credit_rel_tol!r}")


DEFAULT_BOUNDS = RewardBounds()
DEFAULT_CONFIG = SuiteConfig()


class ExpectConversionCreditsToSumToValue(gxe.ExpectColumnValuesToBeBetween):
    """Per (conversion_id, agent), the delayed rows' credits sum to the conversion_value.

    Runs on the derived ``credit_rel_error`` column; initial rows hold null there and are skipped.
    """

    column: str = CREDIT_REL_ERROR
    min_value: float = 0.0


def credit_rel_error(frame: pd.DataFrame) -> pd.Series:
    """Relative gap |sum(credit) - conversion_value| per delayed row, grouped by (conversion_id, agent).

    Null for initial rows and for delayed rows without a conversion_id (another check flags those);
    infinite for a delayed row without a conversion_value, so the sum check fails on it.

    >>> rows = pd.DataFrame({
    ...     "kind": ["delayed", "delayed", "delayed", "initial"],
    ...     "conversion_id": ["v1", "v1", "v2", None],
    ...     "agent": ["bid", "bid", "bid", "bid"],
    ...     "credit": [6.0, 4.0, 1.0, 0.0],
    ...     "conversion_value": [10.0, 10.0, 2.0, None],
    ... })
    >>> credit_rel_error(rows).tolist()
    [0.0, 0.0, 0.5, nan]
    """
    delayed = frame[(frame["kind"] == "delayed") & frame["conversion_id"].notna()]
    total = delayed.groupby(["conversion_id", "agent"], dropna=False)["credit"].transform("sum")
    value = delayed["conversion_value"].astype(float)
    scale = np.maximum(value.abs(), total.abs())
    gap = (total - value).abs()
    # A zero gap is an exact match even when both sides are 0 (0/0).
    rel = (gap / scale).where(gap != 0, 0.0)
    rel = rel.where(value.notna(), np.inf)
    return rel.reindex(frame.index)


def derive(frame: pd.DataFrame) -> pd.DataFrame:
    """The partition frame as GE sees it: the checked columns plus the derived one."""
    out = frame.loc[:, list(_SUITE_COLUMNS)].copy()
    out[CREDIT_REL_ERROR] = credit_rel_error(frame)
    return out


def _named(
    expectation: gxe.Expectation, check: str, description: str, *, show: Sequence[str] = ()
) -> gxe.Expectation:
    # meta["check"] names the failure in reports; meta["show"] adds columns to failing examples.
    expectation.meta = {"check": check, "show": list(show)}
    expectation.description = f"{check}: {description}"
    return expectation


def build_suite(
    name: str, config: SuiteConfig = SuiteConfig(), *, hour_check: bool = True
) -> gx.ExpectationSuite:
    """A fresh (unsaved) suite; the caller adds it to a context.

    With ``hour_check`` the suite also checks reward_ts against the partition's hour, given at run
    time as the suite parameters ``HOUR_START`` and ``HOUR_END`` (epoch ms, end exclusive), so one
    suite serves every partition.
    """
    suite = gx.ExpectationSuite(name=name)
    for column in ID_COLUMNS:
        suite.add_expectation(
            _named(gxe.ExpectColumnValuesToNotBeNull(column=column), f"{column}_not_null", f"{column} is set")
        )
    suite.add_expectation(
        _named(
            gxe.ExpectColumnValuesToNotBeNull(
                column="conversion_id", row_condition='kind=="delayed"', condition_parser="pandas"
            ),
            "conversion_id_not_null_when_delayed",
            "every delayed row names its conversion",
        )
    )
    bounds = config.bounds
    suite.add_expectation(
        _named(
            gxe.ExpectColumnValuesToBeBetween(column="reward", min_value=bounds.low, max_value=bounds.high),
            "reward_within_bounds",
            f"reward in [{bounds.low}, {bounds.high}]",
        )
    )
    suite.add_expectation(
        _named(
            gxe.ExpectColumnValuesToBeBetween(column="propensity", min_value=0, max_value=1, strict_min=True),
            "propensity_in_(0,1]",
            "the logged propensity is a probability above 0, so inverse-propensity weights stay finite",
        )
    )
    suite.add_expectation(
        _named(
            gxe.ExpectColumnValuesToBeInSet(column="kind", value_set=list(KINDS)),
            "kind_in_set",
            "kind is initial or delayed",
        )
    )
    suite.add_expectation(
        _named(
            gxe.ExpectColumnValuesToBeInSet(column="agent", value_set=list(AGENTS)),
            "agent_in_set",
            "agent is one of the agents (attribution.config.AGENTS)",
        )
    )
    suite.add_expectation(
        _named(
            ExpectConversionCreditsToSumToValue(max_value=config.credit_rel_tol),
            "credits_sum_to_conversion_value",
            "per (conversion_id, agent), sum(credit) equals conversion_value"
            f" within {config.credit_rel_tol:g} relative",
            show=("agent", "credit", "conversion_value", CREDIT_REL_ERROR),
        )
    )
    suite.add_expectation(
        _named(
            gxe.ExpectCompoundColumnsToBeUnique(
                # "never": rows with a null conversion_id (initial rows) are compared too; the
                # pandas engine treats two nulls as equal here.
                column_list=["decision_id", "kind", "conversion_id"],
                ignore_row_if="never",
            ),
            "unique_decision_kind_conversion",
            "no two rows share (decision_id, kind, conversion_id); decision_id already names the agent",
            show=("agent",),
        )
    )
    if hour_check:
        suite.add_expectation(
            _named(
                gxe.ExpectColumnValuesToBeBetween(
                    column="reward_ts",
                    min_value={"$PARAMETER": HOUR_START},
                    max_value={"$PARAMETER": HOUR_END},
                    strict_max=True,
                ),
                "reward_ts_in_partition_hour",
                "reward_ts falls in the partition's UTC hour",
            )
        )
    return suite
