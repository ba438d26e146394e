"""Test tiers: every test is marked by the folder it lives in (unit, flink, integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

_TIERS = ("unit", "flink", "integration")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in _TIERS:
            if tier in parts and "tests" in parts:
                item.add_marker(getattr(pytest.mark, tier))
                break
        else:
            # Doctests in the pure packages run with the unit tier.
            item.add_marker(pytest.mark.unit)
