"""Turn a GE suite validation result into a small, printable partition report."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

# Columns shown for a failing row, before the checked column(s).
_KEY_COLUMNS = ("decision_id", "kind", "conversion_id")


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation on one partition.

    ``name`` is the check name (``meta["check"]``), ``expectation_type`` the GE type behind it,
    ``observed`` a one-line summary of what was seen, ``examples`` a few failing rows.
    """

    name: str
    expectation_type: str
    success: bool
    observed: str
    examples: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class PartitionReport:
    """All expectations on one partition; ``error`` is set when the partition could not be checked."""

    partition: str
    rows: int
    outcomes: tuple[ExpectationOutcome, ...] = ()
    error: str | None = None
    docs_url: str | None = field(default=None, compare=False)

    @property
    def success(self) -> bool:
        return self.error is None and all(o.success for o in self.outcomes)

    @property
    def failed(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.success)

    def outcome(self, name: str) -> ExpectationOutcome:
        for o in self.outcomes:
            if o.name == name:
                return o
        raise KeyError(f"partition {self.partition}: no expectation named {name!r}; have {self.names()}")

    def names(self) -> list[str]:
        return [o.name for o in self.outcomes]

    def line(self) -> str:
        """One line for the CLI: OK, or FAILED with each failing expectation and its observed value."""
        if self.error is not None:
            return f"FAILED {self.partition}: {self.error}"
        if self.success:
            return f"OK     {self.partition} ({self.rows} rows, {len(self.outcomes)} expectations)"
        failed = "; ".join(f"{o.name}: {o.observed}" for o in self.failed)
        return f"FAILED {self.partition} ({self.rows} rows): {failed}"


def _observed(result: dict[str, Any]) -> str:
    if "observed_value" in result:
        return repr(result["observed_value"])
    unexpected, total = result.get("unexpected_count"), result.get("element_count")
    if unexpected is None:
        return "no result"
    shown = ", ".join(_short(v) for v in (result.get("partial_unexpected_list") or [])[:3])
    values = f" e.g. {shown}" if unexpected else ""
    return f"{unexpected} of {total} rows unexpected{values}"


def _short(value: Any) -> str:
    if isinstance(value, float) and not math.isnan(value):
        return f"{value:.6g}"
    return repr(value)


def _examples(
    frame: pd.DataFrame, result: dict[str, Any], columns: list[str], limit: int
) -> tuple[dict[str, Any], ...]:
    index = list(result.get("partial_unexpected_index_list") or [])[:limit]
    shown = [c for c in (*_KEY_COLUMNS, *columns) if c in frame.columns]
    shown = list(dict.fromkeys(shown))
    rows = frame.loc[[i for i in index if i in frame.index], shown]
    return tuple({k: (None if pd.isna(v) else v) for k, v in row.items()} for _, row in rows.iterrows())


def outcome_from(validation: Any, frame: pd.DataFrame, *, max_examples: int) -> ExpectationOutcome:
    """One GE ExpectationValidationResult as an outcome; GE errors count as failures."""
    config = validation.expectation_config
    kwargs = config.kwargs
    meta = config.meta or {}
    columns = [kwargs["column"]] if "column" in kwargs else list(kwargs.get("column_list", []))
    columns += list(meta.get("show", []))
    name = meta.get("check", config.type)
    exception = validation.exception_info or {}
    if exception.get("raised_exception"):
        return ExpectationOutcome(name, config.type, False, f"error: {exception.get('exception_message')}")
    result = dict(validation.result or {})
    examples = () if validation.success else _examples(frame, result, columns, max_examples)
    return ExpectationOutcome(name, config.type, bool(validation.success), _observed(result), examples)
