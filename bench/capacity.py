"""Benchmark: live capacity of the whole job on the default settings: the knee, a soak at 80% of it,
and the replay rate beside them.

    python -m bench.capacity [--rates 6000,8000,10000,12000,14000,16000,18000,20000]
        [--step-warmup 30] [--step-seconds 60] [--soak-minutes 20] [--replay-repeats 3]
        [--out bench/results/capacity.md]

Starts its own Kafka and Redis on loopback; every job runs on the local mini-cluster with learners
on, p = 1, and the settings of flink-conf/ and the app config as they are (nothing overridden but
the topics, the work directory and the REST port the bench reads metrics from).

- **Knee**: one unbounded job; the load generator of ``bench_feedback`` (impressions, 10% clicked,
  ``ts`` = now) writes at each rate of ``--rates`` in turn, ``--step-warmup`` s and then
  ``--step-seconds`` s of probes (an impression and its click for a campaign of its own, every
  half second; freshness is click produced to the new policy at a subscribed ServingClient). A
  step holds when p99 <= 1 s, every probe arrived, and the consumer lag (the Kafka source's
  ``pendingRecords``) did not grow: its least-squares slope over the step stays under 1% of the
  rate, or the lag ends under one second of input. The search stops at the first step that does
  not hold; the knee is the last rate that held. State from the earlier steps stays, as it would
  live.
- **Soak**: a fresh job at 80% of the knee for ``--soak-minutes``, probes throughout. Sampled every
  5 s: consumer lag, heap used, the job's CPU, and the latest checkpoint's state size, in total and
  per operator. p50/p99 per minute. One PNG of the four over time.
- **Replay**: the whole job (``bench_feedback``'s ``learners`` variant, p = 1) over 30 simulated
  days, bounded, ``--replay-repeats`` runs; its median sustained rate is the denominator of
  knee / replay.

CPU: the job's (every process of its process group: the PyFlink client, its JVM with the
mini-cluster, the Python workers) and the bench's own (load generator and subscriber), in cores
over the measured stretch, since both share the machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench import bench_feedback as fb
from bench.bench_attribution import BenchError, _check_prerequisites, scratch_dir
from bench.capacity_report import held, lag_growing, plot, render, slope_of
from bench.live_job import SAMPLE_S, LiveJob, thread_cpu

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "capacity.md"
SOAK_SHARE = 0.8


def _cores(a: dict[str, Any], b: dict[str, Any], key: str) -> float:
    return (b[key] - a[key]) / (b["t"] - a["t"])


def _measure(job: LiveJob, rate: float, seconds: float, on_sample: Any = None) -> dict[str, Any]:
    """Probes every half second and samples every SAMPLE_S for ``seconds`` (the load already runs)."""
    keys: list[str] = []
    labels = job.watch.task_labels()
    threads0, samples = thread_cpu(job.proc.pid, labels), [job.sample()]
    t0 = time.monotonic()
    next_sample = t0 + SAMPLE_S
    while time.monotonic() - t0 < seconds:
        if job.proc.poll() is not None:
            raise BenchError(f"the job exited (log: {job.log})")
        keys.append(job.probe())
        if time.monotonic() >= next_sample:
            samples.append(job.sample())
            if on_sample:
                on_sample(samples[-1], job)
            next_sample += SAMPLE_S
        time.sleep(0.5)
    samples.append(job.sample())
    threads1 = thread_cpu(job.proc.pid, labels)
    span = samples[-1]["t"] - samples[0]["t"]
    profile = {k: (v - threads0.get(k, 0.0)) / span for k, v in threads1.items()}
    grace = time.monotonic() + 5.0
    while time.monotonic() < grace and not all(k in job.probes.seen for k in keys):
        time.sleep(0.1)
    lat = job.probes.latencies(keys, time.time())
    lags = [(s["t"] - t0, s["lag"]) for s in samples]
    produced = (samples[-1]["sent"] - samples[0]["sent"]) / (samples[-1]["t"] - samples[0]["t"])
    return {
        "rate": rate,
        "produced": produced,
        "probes": len(keys),
        "missing": sum(k not in job.probes.seen for k in keys),
        "p50": fb._pct(lat, 50),
        "p99": fb._pct(lat, 99),
        "lag_start": lags[0][1],
        "lag_end": lags[-1][1],
        "lag_max": max((y for _, y in lags if y == y), default=float("nan")),
        "lag_slope": slope_of(lags),
        "lag_growing": lag_growing(lags, rate),
        "job_cores": _cores(samples[0], samples[-1], "job_cpu_s"),
        "bench_cores": _cores(samples[0], samples[-1], "bench_cpu_s"),
        "heap_mb_max": max(s["heap_mb"] for s in samples),
        "samples": samples,
        "profile": dict(sorted(profile.items(), key=lambda kv: -kv[1])),
    }


def knee_search(
    svc: Any, rates: list[float], args: argparse.Namespace, scratch: Path, log: Path
) -> list[dict]:
    steps: list[dict] = []
    job = LiveJob(svc, scratch, log, duration_s=24 * 3600)
    try:
        job.start()
        for rate in rates:
            thread, stop = job.load(rate, args.step_warmup + args.step_seconds + 1)
            time.sleep(args.step_warmup)
            step = _measure(job, rate, args.step_seconds)
            stop.set()
            thread.join()
            steps.append(step)
            print(
                f"[capacity] {rate:,.0f}/s (produced {step['produced']:,.0f}): p50 {step['p50']:.3f}s "
                f"p99 {step['p99']:.3f}s, {step['missing']} probes missing, lag {step['lag_start']:,.0f} -> "
                f"{step['lag_end']:,.0f} (slope {step['lag_slope']:,.1f}/s), job {step['job_cores']:.2f} "
                f"cores, bench {step['bench_cores']:.2f} cores -> {'held' if held(step) else 'did not hold'}",
                flush=True,
            )
            if not held(step):
                break
    finally:
        job.close()
    return steps


def soak(svc: Any, rate: float, args: argparse.Namespace, scratch: Path, log: Path) -> dict[str, Any]:
    seconds = args.soak_minutes * 60
    job = LiveJob(svc, scratch, log, duration_s=seconds + 1800)
    states: list[tuple[float, int, dict[str, Any]]] = []  # (t, events read, state)

    def on_sample(sample: dict[str, Any], job: LiveJob) -> None:
        state = job.watch.state()
        if state and (not states or states[-1][2]["id"] != state["id"]):
            # Events the job has read: written less the consumer lag.
            read = job.gen.sent - (sample["lag"] if sample["lag"] == sample["lag"] else 0)
            states.append((sample["t"], int(read), state))
        if states and int(sample["t"] - t0) // 60 != int(sample["t"] - t0 - SAMPLE_S) // 60:  # a minute
            print(
                f"[capacity] soak {sample['t'] - t0:5.0f}s: lag {sample['lag']:,.0f}, heap "
                f"{sample['heap_mb']:,.0f} MB, state {states[-1][2]['bytes'] / 2**20:,.0f} MB",
                flush=True,
            )

    try:
        job.start()
        thread, stop = job.load(rate, seconds + 5)
        t0, wall0 = time.monotonic(), time.time()
        result = _measure(job, rate, seconds, on_sample)
        stop.set()
        thread.join()
        sent_at = {k: v for k, v in job.probes.sent.items()}
        seen = dict(job.probes.seen)
    finally:
        job.close()
    # p50/p99 per minute of the load, by when each probe was sent (not the start-up probes).
    minutes: dict[int, list[float]] = {}
    for k, t in sent_at.items():
        if t >= wall0:
            minutes.setdefault(int((t - wall0) // 60), []).append(seen.get(k, time.time()) - t)
    result["minutes"] = [
        (m, fb._pct(sorted(v), 50), fb._pct(sorted(v), 99))
        for m, v in sorted(minutes.items())
        if len(v) >= 10
    ]
    result["states"] = [(t - t0, sent, st) for t, sent, st in states]
    result["t0"] = t0
    return result


REPLAYS = {  # input kind -> (topic prefix, topics left out)
    "all": (fb.INPUT_PREFIX, ()),
    "no auctions": ("bench.fb.noauc.", ("ad.auctions",)),
}


def replay(svc: Any, args: argparse.Namespace, scratch: Path, log: Path) -> list[dict[str, Any]]:
    """The whole job over 30 simulated days, bounded, p = 1: over every topic, and over the same
    days without ``ad.auctions`` (the live load's kinds of events), alternately."""
    records = {
        kind: sum(fb._write_data(svc.kafka_bootstrap, prefix, {"days": 30}, skip=skip).values())
        for kind, (prefix, skip) in REPLAYS.items()
    }
    runs = []
    for i in range(args.replay_repeats):
        kinds = list(REPLAYS) if i % 2 == 0 else list(REPLAYS)[::-1]
        for kind in kinds:
            r = fb.throughput_run(svc, "learners", 1, records[kind], scratch, log, REPLAYS[kind][0])
            r.update(input=kind, records=records[kind])
            runs.append(r)
            print(
                f"[capacity] replay {i + 1}/{args.replay_repeats} ({kind}, {records[kind]:,} records): "
                f"sustained {r['sustained']:,.0f} rec/s",
                flush=True,
            )
    return runs


def bench(args: argparse.Namespace) -> int:
    from scripts import services as svc_mod

    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    scratch, log = scratch_dir("capacity")
    out = Path(args.out)
    try:
        _check_prerequisites()
        svc = svc_mod.start(ttl_s=4 * 3600, owner_pid=os.getpid())
        print(
            f"[capacity] Kafka {svc.kafka_bootstrap}, Redis {svc.redis_url}; job output in {log}", flush=True
        )
        rates = sorted(float(x) for x in args.rates.split(",") if x)
        replays = replay(svc, args, scratch, log) if args.replay_repeats else []
        steps = knee_search(svc, rates, args, scratch, log)
        knee = max((s["rate"] for s in steps if held(s)), default=0.0)
        soaked, soak_rate, png = None, SOAK_SHARE * knee, None
        if knee and args.soak_minutes > 0:
            soaked = soak(svc, soak_rate, args, scratch, log)
            png = out.with_name(out.stem + "_soak.png")
            out.parent.mkdir(parents=True, exist_ok=True)
            plot(soaked, soak_rate, png)
        text = render(args, steps, soaked, soak_rate, replays, started, png)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(text, flush=True)
        return 0
    finally:
        svc_mod.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="6000,8000,10000,12000,14000,16000,18000,20000")
    parser.add_argument("--step-warmup", type=float, default=30.0, help="seconds at a rate before its probes")
    parser.add_argument("--step-seconds", type=float, default=60.0, help="seconds of probes per rate")
    parser.add_argument("--soak-minutes", type=float, default=20.0)
    parser.add_argument("--replay-repeats", type=int, default=3)
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="results file (Markdown)")
    args = parser.parse_args(argv)
    try:
        return bench(args)
    except BenchError as e:
        print(f"capacity: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
