"""Find and read ad.rewards partitions with pyarrow.

The Flink filesystem sink writes Hive-style directories ``dt=yyyy-MM-dd/hr=HH`` (UTC hour of
``reward_ts``). Files it has not committed yet start with ``.`` and are skipped, as are ``_SUCCESS``
markers, by pyarrow's default ignore prefixes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds

from contract.events import schema

REWARDS_TOPIC = "ad.rewards"
REWARDS_VERSION = 1

_PARTITION = re.compile(r"dt=(\d{4}-\d{2}-\d{2})[/\\]hr=(\d{2})$")


class PartitionError(ValueError):
    """A partition that cannot be checked at all: missing, empty or without a required column."""


def expected_columns() -> dict[str, str]:
    """Column name -> JSON type of the reward row, in contract order (partition columns excluded)."""
    spec = schema(REWARDS_TOPIC, REWARDS_VERSION)
    out = {}
    for name in spec["required"]:
        prop = spec["properties"][name]
        json_type = prop.get("type", "enum" if "enum" in prop else "const")
        out[name] = "|".join(json_type) if isinstance(json_type, list) else str(json_type)
    return out


def partition_label(path: Path) -> str:
    """``dt=.../hr=...`` when the path is (or is inside) a partition, else the file or folder name.

    >>> partition_label(Path("/t/ad_rewards/dt=2024-05-01/hr=13"))
    'dt=2024-05-01/hr=13'
    >>> partition_label(Path("/t/ad_rewards/dt=2024-05-01/hr=13/part-0.parquet"))
    'dt=2024-05-01/hr=13'
    >>> partition_label(Path("/tmp/one.parquet"))
    'one.parquet'
    """
    for candidate in (path, path.parent):
        if _PARTITION.search(candidate.as_posix()):
            return f"{candidate.parent.name}/{candidate.name}"
    return path.name


def partition_hour(label: str) -> tuple[int, int] | None:
    """The ``[start, end)`` epoch-millisecond window of a ``dt=/hr=`` label, or None for other labels.

    >>> partition_hour("dt=1970-01-01/hr=01")
    (3600000, 7200000)
    >>> partition_hour("one.parquet") is None
    True
    """
    match = _PARTITION.search(label)
    if match is None:
        return None
    start = datetime.strptime(f"{match[1]} {match[2]}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    end = start + timedelta(hours=1)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def find_partitions(root: Path) -> list[Path]:
    """Every ``dt=*/hr=*`` directory under a table root, in time order."""
    if not root.exists():
        raise PartitionError(f"reward table: path {str(root)!r} does not exist")
    found = sorted(p for p in root.glob("dt=*/hr=*") if p.is_dir())
    if not found:
        raise PartitionError(f"reward table: no dt=yyyy-MM-dd/hr=HH partitions under {str(root)!r}")
    return found


def is_partition(path: Path) -> bool:
    """True for a single Parquet file, a ``hr=`` directory, or a directory holding Parquet files directly."""
    if path.is_file() or path.name.startswith("hr="):
        return True
    return path.is_dir() and any(p.is_file() for p in path.glob("*.parquet"))


def read_partition(path: Path) -> pd.DataFrame:
    """The rows of one partition (a directory of Parquet files, or one file) as a DataFrame."""
    where = f"partition {str(path)!r}"
    if not path.exists():
        raise PartitionError(f"{where}: path does not exist")
    dataset = ds.dataset(str(path), format="parquet")
    if not dataset.files:
        raise PartitionError(f"{where}: no Parquet files (empty partition)")
    names = set(dataset.schema.names)
    expected = expected_columns()
    missing = [name for name in expected if name not in names]
    if missing:
        wanted = ", ".join(f"{name}: {kind}" for name, kind in expected.items())
        raise PartitionError(
            f"{where}: missing column {missing[0]!r}"
            + (f" (and {missing[1:]})" if len(missing) > 1 else "")
            + f"; expected the {REWARDS_TOPIC} v{REWARDS_VERSION} columns {{{wanted}}}"
            + f"; found {sorted(names)}"
        )
    table = dataset.to_table(columns=list(expected))
    if table.num_rows == 0:
        raise PartitionError(f"{where}: {len(dataset.files)} Parquet file(s) but no rows (empty partition)")
    return table.to_pandas()
