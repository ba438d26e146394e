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
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import bench_feedback as fb
from bench.bench_attribution import (
    BenchError,
    _check_prerequisites,
    _code_version,
    _flink_version,
    _kill_group,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "capacity.md"
P99_LIMIT_S = 1.0
LAG_SLOPE_SHARE = 0.01  # lag growing: slope above this share of the rate ...
LAG_SECONDS = 1.0  # ... and the last lag above this many seconds of input
SAMPLE_S = 5.0
SOAK_SHARE = 0.8


# -- what the running job shows --------------------------------------------------------------------


class JobWatch:
    """Reads a running job's metrics from the mini-cluster's REST API and its CPU from /proc."""

    def __init__(self, rest_port: int, pgid: int) -> None:
        self.rest = f"http://127.0.0.1:{rest_port}"
        self.pgid = pgid
        self.job_id = ""
        self._lag_ids: dict[str, list[str]] = {}

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.rest + path, timeout=5) as response:
            return json.load(response)

    def wait_running(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                running = [j["id"] for j in self._get("/jobs")["jobs"] if j["status"] == "RUNNING"]
                if running:
                    self.job_id = running[0]
                    return
            except OSError:
                pass
            time.sleep(1.0)
        raise BenchError(f"no running job on {self.rest} within {timeout_s:.0f}s")

    def lag(self) -> float:
        """Records in Kafka the job's sources have not read yet (``pendingRecords``, summed)."""
        if not self._lag_ids:
            for vertex in self._get(f"/jobs/{self.job_id}")["vertices"]:
                path = f"/jobs/{self.job_id}/vertices/{vertex['id']}/metrics"
                ids = [m["id"] for m in self._get(path) if m["id"].endswith(".pendingRecords")]
                if ids:
                    self._lag_ids[path] = ids
        total = 0.0
        for path, ids in self._lag_ids.items():
            query = ",".join(urllib.parse.quote(i, safe="") for i in ids)
            total += sum(float(m["value"]) for m in self._get(f"{path}?get={query}"))
        return total if self._lag_ids else float("nan")

    def heap_mb(self) -> float:
        tms = self._get("/taskmanagers")["taskmanagers"]
        total = 0.0
        for tm in tms:
            got = self._get(f"/taskmanagers/{tm['id']}/metrics?get=Status.JVM.Memory.Heap.Used")
            total += sum(float(m["value"]) for m in got)
        return total / 2**20

    def state(self) -> dict[str, Any]:
        """The latest completed checkpoint: id, full state bytes, and bytes per operator name."""
        latest = (self._get(f"/jobs/{self.job_id}/checkpoints").get("latest") or {}).get("completed")
        if not latest:
            return {}
        details = self._get(f"/jobs/{self.job_id}/checkpoints/details/{latest['id']}")
        nodes = self._get(f"/jobs/{self.job_id}/plan")["plan"]["nodes"]
        names = {n["id"]: operator_label(n.get("description", "")) for n in nodes}
        per_vertex: dict[str, int] = {}
        for vid, stats in (details.get("tasks") or {}).items():
            label = names.get(vid, vid)
            per_vertex[label] = per_vertex.get(label, 0) + int(stats.get("state_size", 0))
        return {"id": latest["id"], "bytes": int(latest["state_size"]), "per_vertex": per_vertex}

    def task_labels(self) -> dict[str, str]:
        """Each task's name (what its thread is called) -> a readable label of what it runs."""
        nodes = {
            n["id"]: n.get("description", "") for n in self._get(f"/jobs/{self.job_id}/plan")["plan"]["nodes"]
        }
        labels = {}
        for vertex in self._get(f"/jobs/{self.job_id}")["vertices"]:
            label = operator_label(nodes.get(vertex["id"], ""))
            labels[vertex["name"]] = (
                label if label != nodes.get(vertex["id"], "")[:60] else vertex["name"][:60]
            )
        return labels

    def cpu_s(self) -> float:
        """CPU seconds of every live process in the job's process group."""
        total, tick = 0.0, os.sysconf("SC_CLK_TCK")
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            rest = text[text.rindex(")") + 2 :].split()
            if int(rest[2]) == self.pgid:
                total += (int(rest[11]) + int(rest[12])) / tick
        return total


LABELS = (  # what a vertex's description names -> a readable label, first match wins
    ("ADLOOP_ATTRIBUTE", "attribution (ADLOOP_ATTRIBUTE: touches, 30 days)"),
    ("ADLOOP_CLICK_OUTCOMES", "click outcomes (ADLOOP_CLICK_OUTCOMES: impressions, 1 h)"),
    ("learners", "learners (Python, per campaign and agent)"),
    ("WindowAggregate", "micro-batches (window aggregate)"),
    ("Deduplicate", "deduplication by event_id"),
    ("OverAggregate", "per-partition event-time clock"),
)


def operator_label(description: str) -> str:
    """A readable name for a job vertex from its plan description.

    >>> operator_label("ProcessTableFunction(invocation=[ADLOOP_ATTRIBUTE(...)])")
    'attribution (ADLOOP_ATTRIBUTE: touches, 30 days)'
    """
    for needle, label in LABELS:
        if needle in description:
            return label
    return description[:60]


THREAD_GROUPS = (  # thread name pattern -> group, first match wins
    (r"^GC Thread|^VM Thread|^GC ", "JVM garbage collector"),
    (r"^C2 CompilerThread", "JIT compiler C2"),
    (r"^C1 CompilerThread", "JIT compiler C1"),
    (r"^rocksdb:", "RocksDB compaction and flush (native)"),
    (r"^kafka-producer-network-thread", "Kafka producers' network threads"),
    (r"^Kafka Fetcher|^Source Data Fetcher", "Kafka source fetchers"),
    (r"^Checkpoint|^AsyncOperations|^pool-.*changelog|^changelog", "checkpoints and changelog"),
)


def thread_group(name: str, task_labels: dict[str, str]) -> str:
    """The group a JVM thread's CPU is reported under: a task thread by its operator's label.

    >>> thread_group("GC Thread#1", {})
    'JVM garbage collector'
    >>> thread_group("Source: raw_clicks[7] -> Calc[8] (1/1)#0", {"Source: raw_clicks[7] -> Calc[8]": "x"})
    'task: x'
    """
    base = re.sub(r" \(\d+/\d+\)#\d+$", "", name)
    if base in task_labels:
        return f"task: {task_labels[base]}"
    for pattern, group in THREAD_GROUPS:
        if re.search(pattern, name):
            return group
    return re.sub(r"\d+", "N", base)[:70]


def _jstack_names(pid: str) -> dict[int, str]:
    """Java thread names by native thread id."""
    try:
        out = subprocess.run(["jstack", pid], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {int(m.group(2), 16): m.group(1) for m in re.finditer(r'^"(.*)" .*?nid=0x([0-9a-f]+)', out, re.M)}


def _cpu_of(stat_text: str, tick: float) -> tuple[str, int, float]:
    """(comm, process group, CPU seconds) from a /proc stat line."""
    comm = stat_text[stat_text.index("(") + 1 : stat_text.rindex(")")]
    rest = stat_text[stat_text.rindex(")") + 2 :].split()
    return comm, int(rest[2]), (int(rest[11]) + int(rest[12])) / tick


def thread_cpu(pgid: int, task_labels: dict[str, str]) -> dict[str, float]:
    """CPU seconds so far of the job's processes, the JVM's by thread group, the others by process."""
    tick, totals = os.sysconf("SC_CLK_TCK"), {}  # type: ignore[var-annotated]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            comm, group, cpu = _cpu_of(stat.read_text(), tick)
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        if group != pgid:
            continue
        if comm != "java":
            # Locally PyFlink runs the Python functions (the learners) in the client process.
            what = (
                "Python: the learners (PyFlink client process)" if "_child" in cmdline else f"process {comm}"
            )
            totals[what] = totals.get(what, 0.0) + cpu
            continue
        names = _jstack_names(stat.parent.name)
        for task in (stat.parent / "task").iterdir():
            try:
                tcomm, _, tcpu = _cpu_of((task / "stat").read_text(), tick)
            except (OSError, ValueError):
                continue
            key = thread_group(names.get(int(task.name), tcomm), task_labels)
            totals[key] = totals.get(key, 0.0) + tcpu
    return totals


@dataclass
class Probes:
    """Probe clicks sent and the times their policies reached the subscriber."""

    sent: dict[str, float] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)

    def latencies(self, keys: list[str], now: float) -> list[float]:
        """Seconds from click to policy; a probe not seen yet counts as its age (a lower bound)."""
        return sorted(self.seen.get(k, now) - self.sent[k] for k in keys)


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, y)."""
    points = [(t, y) for t, y in points if y == y]
    if len(points) < 2:
        return float("nan")
    mt = statistics.fmean(t for t, _ in points)
    my = statistics.fmean(y for _, y in points)
    den = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (y - my) for t, y in points) / den if den else float("nan")


def lag_growing(samples: list[tuple[float, float]], rate: float) -> bool:
    """The sources fall behind: the lag's slope is above LAG_SLOPE_SHARE of the rate and its last
    value above LAG_SECONDS of input.

    >>> lag_growing([(0, 0), (10, 50), (20, 100)], 1000)
    False
    >>> lag_growing([(0, 0), (10, 5000), (20, 10000)], 1000)
    True
    """
    slope = _slope(samples)
    last = samples[-1][1] if samples else float("nan")
    return slope > LAG_SLOPE_SHARE * rate and last > LAG_SECONDS * rate


# -- one live job -----------------------------------------------------------------------------------


class LiveJob:
    """The whole job, unbounded on fresh topics, with a load generator, probes and a subscriber."""

    def __init__(self, svc: Any, scratch: Path, log: Path, duration_s: float) -> None:
        from config.app import KafkaConfig
        from scripts import kafka_tools
        from scripts.services import free_port
        from state.policy_store import RedisPolicyStore
        from state.serving_client import ServingClient

        self.svc, self.log = svc, log
        run_id = f"bench.{uuid.uuid4().hex[:8]}"
        prefix = f"{run_id}.in."
        self.spec = fb.RunSpec(
            "fresh",
            1,
            svc.kafka_bootstrap,
            svc.redis_url,
            run_id,
            str(scratch / run_id),
            prefix,
            duration_s=duration_s,
            rest_port=free_port(),
        )
        self.topics = KafkaConfig(topic_prefix=prefix).input_topics() + self.spec.outputs()
        kafka_tools.create_topics(svc.kafka_bootstrap, self.topics, partitions=fb.PARTITIONS)
        self.store = RedisPolicyStore(svc.redis_url, key_prefix=run_id)
        self.probes = Probes()
        self.client = ServingClient(
            self.store,
            seed=0,
            poll_interval_s=0.05,
            on_update=lambda r: self.probes.seen.setdefault(r.campaign_id, time.time()),
        )
        self.gen = fb.LoadGenerator(svc.kafka_bootstrap, prefix, 0.0)
        self.proc = fb._start_child(self.spec, log)
        self.watch = JobWatch(self.spec.rest_port, self.proc.pid)
        self._n = 0

    def start(self) -> None:
        if not self.client.start(wait_s=10):
            raise BenchError("the serving client could not reach Redis")
        self.watch.wait_running(300)
        deadline = time.monotonic() + 300
        while True:  # the first checkpoint and the Python workers are up once a probe comes through
            if self.proc.poll() is not None:
                raise BenchError(f"the job exited early (log: {self.log})")
            keys = [self.probe()]
            time.sleep(2.0)
            if any(k in self.probes.seen for k in keys):
                return
            if time.monotonic() > deadline:
                raise BenchError(f"no policy reached Redis within 300s of starting the job (log: {self.log})")

    def probe(self) -> str:
        key = f"probe{self._n:05d}"
        self._n += 1
        self.probes.sent[key] = self.gen.probe(key)
        return key

    def load(self, rate: float, seconds: float) -> tuple[threading.Thread, threading.Event]:
        self.gen.rate = rate
        stop = threading.Event()
        thread = threading.Thread(target=self.gen.run_for, args=(seconds, stop), daemon=True)
        thread.start()
        return thread, stop

    def sample(self) -> dict[str, Any]:
        return {
            "t": time.monotonic(),
            "lag": self.watch.lag(),
            "heap_mb": self.watch.heap_mb(),
            "job_cpu_s": self.watch.cpu_s(),
            "bench_cpu_s": time.process_time(),
            "sent": self.gen.sent,
        }

    def close(self) -> None:
        from scripts import kafka_tools

        self.client.stop()
        _kill_group(self.proc)
        self.store.purge()
        self.store.close()
        kafka_tools.delete_topics(self.svc.kafka_bootstrap, self.topics)
        shutil.rmtree(self.spec.work, ignore_errors=True)


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
        "lag_slope": _slope(lags),
        "lag_growing": lag_growing(lags, rate),
        "job_cores": _cores(samples[0], samples[-1], "job_cpu_s"),
        "bench_cores": _cores(samples[0], samples[-1], "bench_cpu_s"),
        "heap_mb_max": max(s["heap_mb"] for s in samples),
        "samples": samples,
        "profile": dict(sorted(profile.items(), key=lambda kv: -kv[1])),
    }


def held(step: dict[str, Any]) -> bool:
    return step["p99"] <= P99_LIMIT_S and step["missing"] == 0 and not step["lag_growing"]


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


def state_growth(states: list[tuple[float, int, dict[str, Any]]]) -> dict[str, Any]:
    """Bytes of checkpointed state per event the job read, from the first to the last checkpoint of
    the soak's second half (compaction makes single checkpoints jumpy), in total and per operator."""
    if len(states) < 4:
        return {}
    half = [s for s in states if s[0] >= states[-1][0] / 2]
    (ta, na, a), (tb, nb, b) = half[0], half[-1]
    if nb <= na:
        return {}
    per_vertex = {
        name: (b["per_vertex"].get(name, 0) - a["per_vertex"].get(name, 0)) / (nb - na)
        for name in b["per_vertex"]
    }
    return {
        "bytes_per_event": (b["bytes"] - a["bytes"]) / (nb - na),
        "per_vertex": per_vertex,
        "span_s": tb - ta,
    }


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


def replay_rate(replays: list[dict[str, Any]], kind: str) -> float:
    rates = [r["sustained"] for r in replays if r["input"] == kind and r["sustained"] == r["sustained"]]
    return statistics.median(rates) if rates else float("nan")


# -- the report --------------------------------------------------------------------------------------


def plot(soaked: dict[str, Any], rate: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = soaked["t0"]
    samples = [s for s in soaked["samples"] if s["t"] >= t0]
    t = [(s["t"] - t0) / 60 for s in samples]
    fig, ax = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    mins = soaked["minutes"]
    ax[0][0].plot([m + 0.5 for m, _, _ in mins], [p99 for _, _, p99 in mins], "o-", label="p99")
    ax[0][0].plot([m + 0.5 for m, _, _ in mins], [p50 for _, p50, _ in mins], "o-", label="p50")
    ax[0][0].axhline(P99_LIMIT_S, color="red", lw=0.8, ls="--", label="1 s")
    ax[0][0].set(ylabel="click to policy, s", title="freshness per minute")
    ax[0][0].legend()
    ax[0][1].plot(t, [s["lag"] for s in samples])
    ax[0][1].set(ylabel="records", title="consumer lag (pendingRecords)")
    ax[1][0].plot(t, [s["heap_mb"] for s in samples])
    ax[1][0].set(ylabel="MB", title="JVM heap used", xlabel="minutes")
    states = soaked["states"]
    ax[1][1].plot([x / 60 for x, _, _ in states], [st["bytes"] / 2**20 for _, _, st in states], "o-")
    ax[1][1].set(ylabel="MB", title="checkpointed state", xlabel="minutes")
    fig.suptitle(f"Soak at {rate:,.0f} events/s, default settings, p = 1, learners on")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _overridden() -> str:
    extra = os.environ.get("ADLOOP_BENCH_FLINK_OVERRIDES", "")
    return (
        f"Flink settings overridden by ADLOOP_BENCH_FLINK_OVERRIDES: `{extra}`"
        if extra
        else "nothing overridden"
    )


def render(
    args: argparse.Namespace,
    steps: list[dict],
    soaked: dict | None,
    soak_rate: float,
    replays: list[dict],
    started: str,
    png: Path | None,
) -> str:
    knee = max((s["rate"] for s in steps if held(s)), default=0.0)
    every, live_kinds = replay_rate(replays, "all"), replay_rate(replays, "no auctions")
    lines = [
        "# Live capacity: the knee, a soak, and the replay rate, on the default settings",
        "",
        f"Command: `python -m bench.capacity --rates {args.rates} --step-warmup {args.step_warmup:g} "
        f"--step-seconds {args.step_seconds:g} --soak-minutes {args.soak_minutes:g} "
        f"--replay-repeats {args.replay_repeats}`",
        "",
        f"Date: {started} UTC. Machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}, {_flink_version()} on the local mini-cluster, learners on, p = 1, "
        f"{_overridden()}; Kafka, Redis, the load generator and the subscriber on the same machine; "
        f"{_code_version()}.",
        "",
        f"**Knee: {knee:,.0f} events/s.** Replay of the whole job (30 simulated days, bounded, p = 1, "
        f"median sustained rate of {args.replay_repeats} runs each): {every:,.0f} records/s over every "
        f"topic, **knee / replay {knee / every:.2f}**; {live_kinds:,.0f} records/s over the same days "
        f"without `ad.auctions` (impressions, clicks and conversions: the live load's kinds of "
        f"events), **knee / replay {knee / live_kinds:.2f}**.",
        "",
        "## Knee search (one job, the rate raised step by step)",
        "",
        f"{args.step_warmup:g} s at the rate, then {args.step_seconds:g} s of probes. Holds: p99 <= 1 s, "
        "no probe missing, lag not growing.",
        "",
        "| rate | produced | probes | missing | p50 s | p99 s | lag start | lag end | lag slope /s "
        "| job cores | bench cores | heap max MB | held |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in steps:
        lines.append(
            f"| {s['rate']:,.0f} | {s['produced']:,.0f} | {s['probes']} | {s['missing']} | {s['p50']:.3f} | "
            f"**{s['p99']:.3f}** | {s['lag_start']:,.0f} | {s['lag_end']:,.0f} | {s['lag_slope']:,.1f} | "
            f"{s['job_cores']:.2f} | {s['bench_cores']:.2f} | {s['heap_mb_max']:,.0f} | "
            f"{'yes' if held(s) else '**no**'} |"
        )
    lines += _profile_section(steps)
    lines += [
        "",
        "## Replay runs (in run order)",
        "",
        "| input | records | sustained rec/s | span rec/s | JVM CPU s |",
        "|---|---|---|---|---|",
    ]
    for r in replays:
        lines.append(
            f"| {r['input']} | {r['records']:,} | {r['sustained']:,.0f} | {r['rate']:,.0f} | "
            f"{r['cpu_s']:.1f} |"
        )
    if soaked:
        lines += _soak_section(soaked, soak_rate, args, png)
    return "\n".join(lines) + "\n"


def _profile_section(steps: list[dict]) -> list[str]:
    """Where the job's CPU went at the last step that held and the first that did not."""
    shown = [s for s in steps if held(s)][-1:] + [s for s in steps if not held(s)][:1]
    if not shown:
        return []
    lines = [
        "",
        "## Where the job's CPU goes",
        "",
        "Cores over each step's measured stretch, by JVM thread group (task threads by the operator "
        "chain they run; from /proc and jstack) and by process for the job's Python processes.",
        "",
        "| " + " | ".join(["thread group or process"] + [f"{s['rate']:,.0f}/s" for s in shown]) + " |",
        "|" + "---|" * (len(shown) + 1),
    ]
    names = sorted({k for s in shown for k in s["profile"]}, key=lambda k: -shown[0]["profile"].get(k, 0.0))
    for name in names:
        values = [s["profile"].get(name, 0.0) for s in shown]
        if max(values) >= 0.01:
            lines.append("| " + " | ".join([name] + [f"{v:.2f}" for v in values]) + " |")
    lines.append("| **total** | " + " | ".join(f"**{sum(s['profile'].values()):.2f}**" for s in shown) + " |")
    return lines


def _soak_section(soaked: dict, rate: float, args: argparse.Namespace, png: Path | None) -> list[str]:
    t0 = soaked["t0"]
    samples = [s for s in soaked["samples"] if s["t"] >= t0]
    worst = max((p99 for _, _, p99 in soaked["minutes"]), default=float("nan"))
    third = max(1, len(samples) // 3)
    heap_first = min(s["heap_mb"] for s in samples[:third])
    heap_last = min(s["heap_mb"] for s in samples[-third:])
    growth = state_growth(soaked["states"])
    lines = [
        "",
        f"## Soak: {args.soak_minutes:g} minutes at {rate:,.0f} events/s (80% of the knee)",
        "",
        f"Produced {soaked['produced']:,.0f} events/s; {soaked['probes']} probes, "
        f"{soaked['missing']} missing; "
        f"p50 {soaked['p50']:.3f} s, p99 {soaked['p99']:.3f} s over the whole soak; **worst minute's p99 "
        f"{worst:.3f} s**. Consumer lag {soaked['lag_start']:,.0f} at the start, {soaked['lag_end']:,.0f} "
        f"at the end, at most {soaked['lag_max']:,.0f}; slope {soaked['lag_slope']:,.2f} records/s "
        f"({'growing' if soaked['lag_growing'] else 'not growing'}). Job CPU {soaked['job_cores']:.2f} "
        f"cores, bench (load generator, subscriber) {soaked['bench_cores']:.2f} cores. Heap used, lowest "
        f"sample of the first third {heap_first:,.0f} MB, of the last third {heap_last:,.0f} MB; highest "
        f"{soaked['heap_mb_max']:,.0f} MB.",
        "",
    ]
    if png:
        lines += [f"![soak]({png.name})", ""]
    lines += [
        "Verdicts: "
        + "; ".join(
            [
                f"p99 <= 1 s in every minute: **{'yes' if worst <= P99_LIMIT_S else 'no'}**",
                f"consumer lag not growing: **{'yes' if not soaked['lag_growing'] else 'no'}**",
                f"heap bounded (lowest sample of the last third within 25% of the first third's): "
                f"**{'yes' if heap_last <= 1.25 * heap_first else 'no'}**",
            ]
        )
        + ".",
        "",
        "Per minute, by when the probe was sent; a probe never seen counts as its age at the end.",
        "",
        "| minute | p50 s | p99 s |",
        "|---|---|---|",
    ]
    lines += [f"| {m} | {p50:.3f} | {p99:.3f} |" for m, p50, p99 in soaked["minutes"]]
    if growth:
        lines += [
            "",
            f"State growth over the soak's second half ({growth['span_s']:.0f} s between checkpoints): "
            f"**{growth['bytes_per_event']:,.0f} bytes of checkpointed state per event read**. Per "
            "operator (bytes per event):",
            "",
            "| operator | bytes per event |",
            "|---|---|",
        ]
        for name, b in sorted(growth["per_vertex"].items(), key=lambda kv: -kv[1]):
            if abs(b) >= 1:
                lines.append(f"| {name} | {b:,.1f} |")
    lines += ["", "Checkpoints (s from the soak's start, events read, state MB):", ""]
    lines += [f"- {t:.0f} s, {n:,}, {st['bytes'] / 2**20:,.1f} MB" for t, n, st in soaked["states"]]
    return lines


def bench(args: argparse.Namespace) -> int:
    from scripts import services as svc_mod

    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    scratch = Path(tempfile.mkdtemp(prefix="adloop-bench-capacity-"))
    (scratch / "jars").symlink_to(svc_mod.work_dir() / "jars")
    log = Path(tempfile.gettempdir()) / f"{scratch.name}.jobs.log"
    os.environ["ADLOOP_WORK_DIR"] = str(scratch)
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
