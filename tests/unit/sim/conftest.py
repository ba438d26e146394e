"""One noisy, budget-bound run shared by the stream tests (generated once per session)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from sim import SimConfig, SimRecord, Simulator

# Small but dense: budgets bind within the day and every noise kind occurs many times.
NOISY = SimConfig(
    seed=11,
    days=2,
    n_campaigns=4,
    n_users=3000,
    requests_per_day=20_000,
    daily_budget_range=(600.0, 1500.0),
    duplicate_rate=0.05,
    out_of_order_ms=30_000,
    late_rate=0.01,
    late_by_ms=600_000,
    malformed_rate=0.02,
)


@dataclass
class Run:
    config: SimConfig
    sim: Simulator
    records: list[SimRecord]

    def clean(self, topic: str | None = None) -> list[SimRecord]:
        return [r for r in self.records if r.malformed is None and (topic is None or r.topic == topic)]

    def unique(self, topic: str) -> dict[str, dict[str, Any]]:
        """Clean events of ``topic`` by event_id (duplicates collapse)."""
        return {e["event_id"]: e for e in (json.loads(r.value) for r in self.clean(topic))}


@pytest.fixture(scope="session")
def noisy_run() -> Run:
    sim = Simulator(NOISY)
    return Run(NOISY, sim, list(sim.records()))
