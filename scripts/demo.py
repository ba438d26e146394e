"""The demo: a simulated market through real Kafka into the feedback job on the mini-cluster.

    python -m scripts.demo [--days 3] [--seed 7]

Starts its own Kafka and Redis (loopback, free ports, stopped at the end), writes a few simulated
days with every kind of noise to the input topics, runs the feedback job over them (bounded) and
prints what each step did.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter

from contract import events
from jobs import config as app_config
from scripts import kafka_tools
from scripts import services as svc
from sim.config import SimConfig
from sim.simulator import Simulator
from sim.writers import KafkaWriter


def _say(text: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {text}", flush=True)


def _produce(bootstrap: str, sim_cfg: SimConfig) -> Counter:
    produced: Counter = Counter()
    sim = Simulator(sim_cfg)
    with KafkaWriter(bootstrap) as writer:
        for chunk in sim.run():
            writer.write(chunk.records)
            produced.update(r.topic for r in chunk.records)
            produced.update("malformed" for r in chunk.records if r.malformed)
            day, hour = divmod(chunk.index + 1, 24)
            if hour == 0 and day <= sim_cfg.days:
                _say(
                    f"  simulated day {day}/{sim_cfg.days}: {sum(produced[t] for t in events.TOPICS)} records"
                )
    return produced


def _watch(bootstrap: str, topics: list[str], done: threading.Event) -> None:
    """Progress while the job runs: how much it has written so far."""
    while not done.wait(5.0):
        written = {t: sum(kafka_tools.end_offsets(bootstrap, t).values()) for t in topics}
        _say("  job has written " + ", ".join(f"{n} to {t}" for t, n in written.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3, help="simulated days (default 3)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    os.environ.setdefault("ADLOOP_WORK_DIR", str(svc.DEFAULT_WORK))
    _say("starting Kafka and Redis on loopback")
    try:
        running = svc.start(ttl_s=3600, owner_pid=os.getpid())
    except svc.ServiceError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    try:
        bootstrap = running.kafka_bootstrap
        cfg = app_config.load().replace(
            kafka={"bootstrap_servers": bootstrap, "bounded": True}, redis={"url": running.redis_url}
        )
        out_topics = cfg.kafka.output_topics()
        kafka_tools.create_topics(bootstrap, cfg.kafka.input_topics() + out_topics)
        _say(f"kafka {bootstrap}, redis {running.redis_url}")

        sim_cfg = SimConfig(days=args.days, seed=args.seed, malformed_rate=0.005)
        _say(f"simulating {args.days} days of a {sim_cfg.n_campaigns}-campaign market into Kafka")
        t0 = time.monotonic()
        produced = _produce(bootstrap, sim_cfg)
        _say(
            f"produced in {time.monotonic() - t0:.1f}s: "
            + ", ".join(f"{produced[t]} to {t}" for t in events.TOPICS)
            + f" (of which {produced['malformed']} malformed on purpose)"
        )

        from jobs import feedback_job

        _say("running the feedback job on the local mini-cluster (bounded: stops at the end of the topics)")
        done = threading.Event()
        watcher = threading.Thread(target=_watch, args=(bootstrap, out_topics, done), daemon=True)
        watcher.start()
        t0 = time.monotonic()
        try:
            feedback_job.run(cfg)
        finally:
            done.set()
        elapsed = time.monotonic() - t0
        read = sum(produced[t] for t in events.TOPICS)
        _say(f"job finished in {elapsed:.1f}s: read {read} records from {len(events.TOPICS)} topics")

        valid = [json.loads(v) for v in kafka_tools.read_all(bootstrap, cfg.kafka.topic("events"))]
        dead = [json.loads(v) for v in kafka_tools.read_all(bootstrap, cfg.kafka.topic("dlq"))]
        by_source = Counter(row["source"] for row in valid)
        _say(
            f"wrote {len(valid)} valid events to {cfg.kafka.topic('events')}: "
            + ", ".join(f"{n} {s}s" for s, n in sorted(by_source.items()))
        )
        reasons = Counter(row["reason"].split(":")[0] for row in dead)
        _say(
            f"wrote {len(dead)} dead letters to {cfg.kafka.topic('dlq')}: "
            + ", ".join(f"{n} {r}" for r, n in reasons.most_common())
        )
        return 0
    finally:
        _say("stopping Kafka and Redis")
        svc.stop()


if __name__ == "__main__":
    sys.exit(main())
