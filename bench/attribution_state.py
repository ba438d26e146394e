"""Benchmark: attribution state bytes per live touch, from a checkpoint's size over the touches it
holds.

    python -m bench.attribution_state [--touches 1000000] [--pairs 200000]

starts throwaway Kafka and Redis and a standalone Flink cluster (one TaskManager), and writes
bench/results/attribution_state.md.

Input: ``--touches`` impressions (the simulator's shape: 8 features, a creative and a bid
decision), over ``--pairs`` (user, campaign) pairs, their times spread over 10 days in order: no
click, no conversion, so every impression is a live touch of ``ADLOOP_ATTRIBUTE`` (all inside the
30-day lookback, none waiting to be credited). The job runs unbounded at parallelism 1 with the
learners off and no state changelog. Once the job has read everything, the bench takes a
savepoint in Flink's canonical format, which writes only each state's live entries, and divides
the state size of the operator that runs ``ADLOOP_ATTRIBUTE`` (found by its description in the
job plan) by the touches.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from bench import replay_trials as rt
from bench.flink_cluster import StandaloneCluster
from config import app as app_config
from scripts import kafka_tools
from scripts import services as svc
from sim.noise import SimRecord
from sim.writers import KafkaWriter

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "attribution_state.md"
SPAN_MS = 10 * 86_400_000
START_MS = 1_735_689_600_000  # 2025-01-01
CAMPAIGNS = 4


def impressions(touches: int, pairs: int, seed: int = 1) -> list[SimRecord]:
    """``touches`` valid impressions over ``pairs`` (user, campaign) pairs, in time order."""
    rng = random.Random(seed)
    users = max(1, pairs // CAMPAIGNS)
    out = []
    for i in range(touches):
        ts = START_MS + i * SPAN_MS // touches
        user, campaign = rng.randrange(users), rng.randrange(CAMPAIGNS)
        event = {
            "schema_version": 1,
            "event_id": f"e{i}",
            "impression_id": f"i{i}",
            "ts": ts,
            "user_id": f"u{user:07d}",
            "campaign_id": f"c{campaign:02d}",
            "segment": f"seg{user % 4}",
            "creative_id": f"c{campaign:02d}-cr{i % 4}",
            "bid_price": round(rng.uniform(0.1, 2.0), 6),
            "win_price": round(rng.uniform(0.05, 1.0), 6),
            "features": [round(rng.gauss(0, 1), 4) for _ in range(8)],
            "decisions": [
                {
                    "agent": "creative",
                    "action": f"c{campaign:02d}-cr{i % 4}",
                    "propensity": 0.25,
                    "policy_version": 3,
                },
                {"agent": "bid", "action": "1.5", "propensity": 0.2, "policy_version": 5},
            ],
        }
        value = json.dumps(event, separators=(",", ":")).encode()
        out.append(SimRecord("ad.impressions", f"i{i}".encode(), value, ts, ts))
    return out


def clock_records() -> list[SimRecord]:
    """A click and a conversion for every partition (its number the key's last character) at the
    end of the span, matching nothing: every input partition then has a record, so event time
    follows the impressions (a partition without any holds it back) and click windows close."""
    end = START_MS + SPAN_MS
    out = []
    for p in range(rt.PARTITIONS):
        click = {"schema_version": 1, "event_id": f"ek{p}", "impression_id": f"none{p}", "ts": end}
        conversion = {
            "schema_version": 1,
            "event_id": f"ev{p}",
            "conversion_id": f"v{p}",
            "ts": end,
            "user_id": "nobody",
            "campaign_id": "c00",
            "value": 1.0,
        }
        for topic, event in (("ad.clicks", click), ("ad.conversions", conversion)):
            value = json.dumps(event, separators=(",", ":")).encode()
            out.append(SimRecord(topic, f"clock{p}".encode(), value, end, end))
    return out


def _partition(record: SimRecord) -> int:
    if record.key.startswith(b"clock"):
        return int(record.key[-1:])
    return rt.partition_of(record)


def attribution_state_bytes(cluster: StandaloneCluster, job_id: str, checkpoint_id: int) -> dict[str, int]:
    """State bytes in checkpoint ``checkpoint_id`` of the operators running the project's two
    process table functions, by function name."""
    nodes = cluster.rest(f"/jobs/{job_id}/plan")["plan"]["nodes"]
    details = cluster.rest(f"/jobs/{job_id}/checkpoints/details/{checkpoint_id}")["tasks"]
    found = {}
    for name in ("ADLOOP_ATTRIBUTE", "ADLOOP_CLICK_OUTCOMES"):
        ids = [n["id"] for n in nodes if name in n.get("description", "")]
        if len(ids) != 1:
            raise RuntimeError(f"{len(ids)} operators of the job plan run {name}, expected 1")
        found[name] = int(details[ids[0]]["state_size"])
    found["job"] = sum(int(t["state_size"]) for t in details.values())
    return found


def savepoint(cluster: StandaloneCluster, job_id: str, directory: Path) -> int:
    """Takes a savepoint in Flink's canonical format (only the live entries of each state, where a
    RocksDB checkpoint copies SST files that still hold overwritten and deleted entries until a
    compaction) and returns its checkpoint id."""
    body = json.dumps(
        {"target-directory": directory.as_uri(), "cancel-job": False, "formatType": "CANONICAL"}
    )
    request = urllib.request.Request(
        f"http://localhost:{cluster.rest_port}/jobs/{job_id}/savepoints",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        trigger = json.loads(response.read())["request-id"]

    def done() -> bool:
        status: Any = cluster.rest(f"/jobs/{job_id}/savepoints/{trigger}")
        if status["status"]["id"] != "COMPLETED":
            return False
        if status.get("operation", {}).get("failure-cause"):
            raise RuntimeError(f"savepoint failed: {status['operation']['failure-cause']}")
        return True

    rt.wait_for(done, 1200, "the savepoint")
    latest: Any = cluster.rest(f"/jobs/{job_id}/checkpoints")["latest"]["savepoint"]
    return int(latest["id"])


def measure(bootstrap: str, redis_url: str, work: Path, touches: int, pairs: int) -> dict[str, Any]:
    cfg = rt.run_config(bootstrap, redis_url, "state.", "run", work, 1).replace(
        kafka={"bounded": False, **{f"{n}_topic": f"state.ad.{n}" for n in rt.INPUTS}},
        job={"learners": False, "name": "adloop-attribution-state"},
    )
    kafka_tools.create_topics(bootstrap, rt.trial_topics([cfg]), partitions=rt.PARTITIONS)
    records = clock_records() + impressions(touches, pairs)
    names = {f"ad.{n}": cfg.kafka.topic(n) for n in rt.INPUTS}
    with KafkaWriter(bootstrap, partition_of=_partition) as writer:
        writer.write(SimRecord(names[r.topic], r.key, r.value, r.ts, r.arrival_ms) for r in records)
    settings = {
        "state.changelog.enabled": False,
        "execution.checkpointing.interval": "10 s",
        "taskmanager.memory.process.size": "4g",
    }
    config_file = work / "adloop.yaml"
    config_file.write_text(yaml.safe_dump(app_config.as_sections(cfg)))
    started = time.monotonic()
    with StandaloneCluster(work / "cluster", taskmanagers=1, slots=1, settings=settings) as cluster:
        client = cluster.submit(config_file, log=work / "flink-run.log")
        try:
            job_id = rt.wait_for(lambda: cluster.job_id(cfg.job.name), rt.WAIT_S, "the job to be submitted")
            rt.wait_for(lambda: rt.read_to(cfg, range(rt.PARTITIONS)), 3600, "the job to read everything", 5)
            sizes = attribution_state_bytes(cluster, job_id, savepoint(cluster, job_id, work / "savepoints"))
        finally:
            client.kill()
    return {"touches": touches, "pairs": pairs, "wall_s": time.monotonic() - started, **sizes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.attribution_state", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--touches", type=int, default=1_000_000)
    parser.add_argument("--pairs", type=int, default=200_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with svc.throwaway("adloop-state-") as (work, running):
        result = measure(running.kafka_bootstrap, running.redis_url, work, args.touches, args.pairs)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    per_touch = result["ADLOOP_ATTRIBUTE"] / result["touches"]
    text = [
        "# Attribution state per live touch",
        "",
        f"`python -m bench.attribution_state --touches {args.touches} --pairs {args.pairs}`, {when}, commit "
        f"{commit.stdout.strip()}. The module's docstring says what is measured.",
        "",
        "| live touches | (user, campaign) pairs | ADLOOP_ATTRIBUTE state bytes "
        "| bytes per touch (target <= 100) | ADLOOP_CLICK_OUTCOMES state bytes | whole job's state bytes "
        "| wall s |",
        "|---|---|---|---|---|---|---|",
        f"| {result['touches']:,} | {result['pairs']:,} | {result['ADLOOP_ATTRIBUTE']:,} "
        f"| **{per_touch:.1f}** | {result['ADLOOP_CLICK_OUTCOMES']:,} | {result['job']:,} "
        f"| {result['wall_s']:.0f} |",
        "",
    ]
    args.out.write_text("\n".join(text))
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
