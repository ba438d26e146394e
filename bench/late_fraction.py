"""The price of deciding lateness per partition, in late rows, on the simulator's traffic.

    python -m bench.late_fraction [--days 30] [--partitions 2]

Both rules are computed from the simulator's records in the order they are written, each record
in the partition its key hashes to (bench/replay_trials.py), for the valid records of each topic:

- per partition (the job's rule, sql/ingest.py): late when its event time is at or behind its own
  partition's latest event time so far minus ``ingest.out_of_orderness_ms``;
- by the watermark (the rule it replaced): late when at or behind the minimum over the partitions
  of that bound, the partitions read in step with each other, in write order. That is the rule at
  its best: in a real replay the reader runs ahead on one partition or another, and the late set
  moved with the scheduling.

Prints a table per topic and overall.
"""

from __future__ import annotations

import argparse
import zlib
from collections import defaultdict

from config.app import IngestConfig
from sim.config import SimConfig
from sim.simulator import Simulator


def late_counts(records, partitions: int, out_of_orderness_ms: int) -> dict[str, dict[str, int]]:
    """Per topic: valid records, late by partition, late by the watermark."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"valid": 0, "partition": 0, "watermark": 0})
    latest: dict[str, dict[int, int]] = defaultdict(dict)  # topic -> partition -> latest event time
    for r in records:
        if r.malformed is not None:
            continue
        p = zlib.crc32(r.key or r.value) % partitions
        seen = latest[r.topic]
        own = max(seen.get(p, r.ts), r.ts)
        watermark = min(seen.values()) - out_of_orderness_ms if len(seen) == partitions else None
        c = counts[r.topic]
        c["valid"] += 1
        c["partition"] += r.ts <= own - out_of_orderness_ms
        c["watermark"] += watermark is not None and r.ts <= watermark
        seen[p] = own
    return dict(counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.late_fraction", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--days", type=int, default=SimConfig.days)
    parser.add_argument("--partitions", type=int, default=2)
    args = parser.parse_args(argv)
    bound = IngestConfig().out_of_orderness_ms
    records = (r for chunk in Simulator(SimConfig(days=args.days)).run() for r in chunk.records)
    counts = late_counts(records, args.partitions, bound)
    total = {k: sum(c[k] for c in counts.values()) for k in ("valid", "partition", "watermark")}
    print(f"simulator defaults, {args.days} days, {args.partitions} partitions, out-of-orderness {bound} ms")
    print("| topic | valid rows | late, per partition | late, by the watermark (in step) |")
    print("|---|---|---|---|")
    for topic, c in sorted({**counts, "all": total}.items()):
        cells = [f"{c[k]:,} ({c[k] / max(c['valid'], 1):.4%})" for k in ("partition", "watermark")]
        print(f"| {topic} | {c['valid']:,} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
