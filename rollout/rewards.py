"""What each policy version of a (campaign, agent) earned so far, from the Parquet reward table.

Rows are counted once committed (the table's files are committed on checkpoints). ``decisions``
counts a version's initial rows (one per decision it made); ``reward`` sums all its rows, the
delayed conversion credit included.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.compute as pc
import pyarrow.dataset as ds

__all__ = ["VersionReward", "reward_by_version"]


@dataclass(frozen=True, slots=True)
class VersionReward:
    decisions: int
    reward: float

    @property
    def per_decision(self) -> float | None:
        return self.reward / self.decisions if self.decisions else None


def reward_by_version(table_path: str, campaign_id: str, agent: str) -> dict[int, VersionReward]:
    """{policy_version: its decisions and reward} of (campaign, agent); empty when the table has
    no rows yet (or does not exist)."""
    path = urlsplit(table_path).path if table_path.startswith("file://") else table_path
    if "://" not in path and not Path(path).exists():
        return {}
    dataset = ds.dataset(path, format="parquet", partitioning="hive")
    table = dataset.to_table(
        columns=["policy_version", "kind", "reward"],
        filter=(pc.field("campaign_id") == campaign_id) & (pc.field("agent") == agent),
    )
    if table.num_rows == 0:
        return {}
    initial = pc.cast(pc.equal(table["kind"], "initial"), "int64")
    table = table.append_column("initial", initial)
    grouped = table.group_by("policy_version").aggregate([("initial", "sum"), ("reward", "sum")])
    return {
        int(v): VersionReward(int(n), float(r or 0.0))
        for v, n, r in zip(
            grouped["policy_version"].to_pylist(),
            grouped["initial_sum"].to_pylist(),
            grouped["reward_sum"].to_pylist(),
            strict=True,
        )
        if v is not None
    }
