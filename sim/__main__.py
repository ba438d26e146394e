"""Command line: generate a simulated run into files or Kafka.

python -m sim --days 30 --out files:DIR [--truth PATH]
python -m sim --days 30 --out kafka:HOST:PORT [--topic-prefix P] [--seed N] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from sim.config import SimConfig
from sim.simulator import Simulator
from sim.writers import FileWriter, KafkaWriter


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sim", description="Seeded ad-market simulator (event contract v1)."
    )
    p.add_argument("--out", required=True, help="files:DIR or kafka:HOST:PORT[,HOST:PORT...]")
    p.add_argument("--days", type=int, help=f"simulated days (default {SimConfig.days})")
    p.add_argument("--seed", type=int, help=f"random seed (default {SimConfig.seed})")
    p.add_argument("--topic-prefix", default="", help="prefix for topic (or file) names")
    p.add_argument("--truth", help="write the ground truth JSON here")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any SimConfig field, e.g. duplicate_rate=0.02",
    )
    p.add_argument(
        "--config",
        default=None,
        help="app config (adloop.yaml) whose kafka.properties (security settings) the writer uses",
    )
    p.add_argument(
        "--kafka-timeout", type=float, default=10.0, help="seconds to wait for the broker (default 10)"
    )
    p.add_argument("--quiet", action="store_true", help="no per-day progress")
    return p


def _config(args: argparse.Namespace) -> SimConfig:
    overrides: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set: expected KEY=VALUE, found {item!r}")
        overrides[key.strip()] = value.strip()
    if args.days is not None:
        overrides["days"] = args.days
    if args.seed is not None:
        overrides["seed"] = args.seed
    return SimConfig.from_mapping(overrides)


def _writer(out: str, prefix: str, timeout_s: float, config: str | None = None) -> FileWriter | KafkaWriter:
    kind, _, target = out.partition(":")
    if kind == "files" and target:
        return FileWriter(target, topic_prefix=prefix)
    if kind == "kafka" and target:
        from connect.kafka_props import client_settings_from_file

        settings = client_settings_from_file(config) if config else {}
        return KafkaWriter(target, topic_prefix=prefix, timeout_s=timeout_s, config=settings)
    raise ValueError(f"--out: expected files:DIR or kafka:HOST:PORT, found {out!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = _config(args)
        writer = _writer(args.out, args.topic_prefix, args.kafka_timeout, args.config)
    except (ValueError, ConnectionError) as exc:
        parser.exit(2, f"error: {exc}\n")
    sim = Simulator(config)
    started = time.monotonic()
    with writer:
        for chunk in sim.run():
            counts = writer.write(chunk.records)
            day, hour = divmod(chunk.index + 1, 24)
            if not args.quiet and hour == 0 and day <= config.days:
                total = sum(counts.values())
                print(
                    f"day {day}/{config.days}: {total:,} records, {time.monotonic() - started:.1f}s",
                    file=sys.stderr,
                    flush=True,
                )
        counts = writer.close()
    elapsed = time.monotonic() - started
    print(
        f"wrote {sum(counts.values()):,} records to {args.out} "
        f"in {elapsed:.1f}s ({config.days} simulated days)"
    )
    for topic, n in sorted(counts.items()):
        print(f"  {topic}: {n:,}")
    truth = sim.truth.counts
    print(
        f"  noise: {truth['duplicates']:,} duplicates, {truth['late']:,} late, "
        f"{truth['malformed']:,} malformed; {truth['won']:,} auctions won of {truth['requests']:,} requests"
    )
    if args.truth:
        print(f"  ground truth: {sim.truth.write_json(args.truth)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
