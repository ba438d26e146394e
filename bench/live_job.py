"""A live run of the whole job for the capacity bench: the job on fresh topics, its load generator,
probes and a subscribed ServingClient, and what the running job shows (REST metrics, checkpoint
sizes, CPU by process and by JVM thread)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import bench_feedback as fb
from bench.bench_attribution import BenchError, _kill_group, proc_stat

SAMPLE_S = 5.0  # how often a measured stretch samples the job


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
        total = 0.0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                _, _, group, cpu = proc_stat(stat.read_text())
            except (OSError, ValueError):
                continue
            if group == self.pgid:
                total += cpu
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


def thread_cpu(pgid: int, task_labels: dict[str, str]) -> dict[str, float]:
    """CPU seconds so far of the job's processes, the JVM's by thread group, the others by process."""
    totals: dict[str, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            comm, _, group, cpu = proc_stat(stat.read_text())
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
                tcomm, _, _, tcpu = proc_stat((task / "stat").read_text())
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


class LiveJob:
    """The whole job, unbounded on fresh topics, with a load generator, probes and a subscriber."""

    def __init__(self, svc: Any, scratch: Path, log: Path, duration_s: float) -> None:
        from config.app import KafkaConfig
        from scripts import kafka_tools
        from scripts.services import free_port
        from state.policy_store import RedisPolicyStore
        from state.serving_client import ServingClient

        self.svc, self.log = svc, log
        self.spec = fb.fresh_spec(svc, scratch, duration_s, rest_port=free_port())
        prefix = self.spec.input_prefix
        run_id = self.spec.run_id
        self.topics = KafkaConfig(topic_prefix=prefix).input_topics() + self.spec.outputs()
        kafka_tools.create_topics(svc.kafka_bootstrap, self.topics, partitions=fb.PARTITIONS)
        self.store = RedisPolicyStore(svc.redis_url, key_prefix=run_id)
        self.probes = Probes()
        self.client = ServingClient(
            self.store,
            seed=0,
            poll_interval_s=0.05,
            on_update=self._seen,
        )
        self.gen = fb.LoadGenerator(svc.kafka_bootstrap, prefix, 0.0)
        self.proc = fb._start_child(self.spec, log)
        self.watch = JobWatch(self.spec.rest_port, self.proc.pid)
        self._n = 0

    def _seen(self, record: Any) -> None:
        self.probes.seen.setdefault(record.campaign_id, time.time())

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
