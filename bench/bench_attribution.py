"""Benchmark: attribution throughput on real Kafka against a plain Flink SQL pass-through.

One simulated data set is written once to three input topics (2 partitions each) on a Kafka broker
started for the run. Then, at parallelism 1 and 2, two jobs read those same topics, bounded, on the
local mini-cluster, alternately and several times:

- ``passthrough``: the feedback job's three raw Kafka source tables (``register_sources``), their
  ``payload`` copied unchanged into one Kafka sink table (format raw, at-least-once);
- ``attribution``: the feedback job as ``feedback_job.run`` starts it with ``job.learners: false``
  (all SQL: validation, DLQ, dedup, late split, click and conversion attribution, reward rows to
  Kafka and Parquet, the learners' micro-batches to Kafka; no Python operator).

Each run is its own Python process (a fresh PyFlink gateway JVM and mini-cluster), so one run's
JIT, memory or a hung job cannot leak into the next; a failing job fails the bench (no restarts).
Throughput is input records (every record of the three topics, duplicates and malformed ones
included) per second, four ways:

- raw: records / wall time from building the job's table environment until the job has finished;
- startup-corrected: records / (wall - startup), startup being the median wall time of the same
  job at the same parallelism over a tiny input (plan, submit, deploy, end-of-input checkpoint);
- processing span: records / (last - first output record), from the Kafka timestamps the sinks
  give their records; it leaves out startup and the wait for the final checkpoint at the end;
- sustained: records x 0.5 / the time the main output (the pass-through's topic, the rewards)
  took to grow from 40% to 90% of its final count, sampled while the job runs: the rate once the
  first stretch of warm-up is over, which is what a job that runs for days sees. The verdict
  uses it.

Also the CPU time of the JVM that runs the job, turned into records per CPU-second over the tiny
run's CPU time: other load on a shared machine stretches wall time far more than CPU time.
Reported: medians over ``--repeats`` runs, and the ratios attribution / pass-through.

    python -m bench.bench_attribution [--days 30] [--repeats 3] [--out bench/results/attribution.md]

``ADLOOP_BENCH_FLINK_OVERRIDES`` (a JSON object of Flink keys) changes the jobs' Flink settings for
an experiment, e.g. ``'{"state.backend.type": "hashmap"}'``.

The default input is 30 simulated days (~283k records). Over 10 days (~94k records) the JIT
compiler's threads used more CPU than any operator of the attribution job (C2 and C1 together
~43 of ~100 JVM CPU-seconds, in a per-thread sample), so even the processing span measured
mostly warm-up. Each attribution run takes 1-2 minutes, the whole bench 10-15 minutes on a quiet
machine (longer on a shared one).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "attribution.md"
VARIANTS = ("passthrough", "attribution")
PARALLELISMS = (1, 2)
PARTITIONS = 2
TARGET_RATIO = 0.5
OUTPUTS = ("rewards", "batches", "late", "dlq")  # the Kafka sinks of feedback_job.build
TINY_SIM = {"days": 1, "requests_per_day": 300, "n_users": 200}  # a couple of hundred records
EDGE = 20  # records read at each end of each output partition for the first/last timestamps
FULL_PREFIX, TINY_PREFIX = "bench.full.", "bench.tiny."
JOB_CODE = (
    "jobs",
    "sql",
    "attribution",
    "contract",
    "sim",
    "flink-conf",
    "scripts",
)  # what the runs exercise


class BenchError(RuntimeError):
    """A failure the user sees as one line."""


@dataclass(frozen=True)
class RunSpec:
    """Everything a child process needs for one timed job."""

    variant: str
    parallelism: int
    bootstrap: str
    input_prefix: str
    run_id: str
    work: str  # this run's scratch directory (Parquet table, checkpoints, spec and result)

    def output_topics(self) -> list[str]:
        """Topics this run writes (the app config puts the input prefix on every topic)."""
        if self.variant == "passthrough":
            return [f"{self.input_prefix}{self.run_id}.passthrough"]
        cfg = _app_config(self)
        return [cfg.kafka.topic(name) for name in OUTPUTS]


@dataclass
class RunResult:
    variant: str
    parallelism: int
    size: str  # "full" or "tiny"
    records: int
    wall_s: float  # execute() until the job finished
    submit_s: float  # execute() until it returned (plan, mini-cluster start, submission)
    net_s: float  # Flink's own job runtime
    first_out_s: float  # execute() until the first output record
    span_s: float  # first until last output record
    sustained_eps: float  # input records/s while the main output went from 40% to 90% of its total
    tail_s: float  # last output record until the job finished (end-of-input checkpoint, shutdown)
    cpu_s: float  # CPU time of the JVM (gateway + mini-cluster) over the whole process
    outputs: dict[str, int]
    load: float  # 1-minute load average at the end of the run (the machine is shared)


# -- the child: one job, timed --------------------------------------------------------------------


def _app_config(spec: RunSpec) -> Any:
    from config import app as app_config

    return app_config.AppConfig().replace(
        kafka={
            "bootstrap_servers": spec.bootstrap,
            "topic_prefix": spec.input_prefix,
            "bounded": True,
            "group_id": f"{spec.run_id}.group",
            **{f"{name}_topic": f"{spec.run_id}.{name}" for name in OUTPUTS},
        },
        # The SQL job alone: attribution, reward tables and the learners' micro-batches.
        job={
            "parallelism": spec.parallelism,
            "name": f"bench-{spec.variant}-p{spec.parallelism}",
            "learners": False,
        },
        tables={"rewards_path": str(Path(spec.work) / "rewards")},
    )


def _passthrough_job(cfg: Any, spec: RunSpec, overrides: dict[str, str]) -> Any:
    """The raw source tables' payloads into one Kafka sink, submitted; returns its JobClient."""
    from jobs import feedback_job
    from jobs.runtime import table_environment
    from sql.ingest import STEMS

    t_env = table_environment(spec.parallelism, overrides)
    t_env.get_config().set("pipeline.name", cfg.job.name)
    feedback_job.register_sources(t_env, cfg)
    (topic,) = spec.output_topics()
    t_env.execute_sql(f"""CREATE TABLE passthrough_sink (payload STRING) WITH (
  'connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{spec.bootstrap}',
  'format' = 'raw', 'sink.delivery-guarantee' = 'at-least-once'
)""")
    statements = t_env.create_statement_set()
    union = " UNION ALL ".join(f"SELECT payload FROM raw_{stem}" for stem in STEMS.values())
    statements.add_insert_sql(f"INSERT INTO passthrough_sink {union}")
    return statements.execute().get_job_client()


def proc_stat(text: str) -> tuple[str, int, int, float]:
    """(command name, parent pid, process group, CPU seconds: user + system) from a /proc stat line.

    >>> proc_stat("7 (java x) S 1 7 7 0 -1 0 0 0 0 0 250 50 0 0")[:3]
    ('java x', 1, 7)
    """
    comm = text[text.index("(") + 1 : text.rindex(")")]
    rest = text[text.rindex(")") + 2 :].split()
    return comm, int(rest[1]), int(rest[2]), (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def _jvm_cpu_s() -> float:
    """CPU seconds (user + system) of this process's Java children: the PyFlink gateway JVM, which
    hosts the mini-cluster and so every operator of the job."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            comm, parent, _, cpu = proc_stat(stat.read_text())
        except OSError:
            continue
        if comm == "java" and parent == os.getpid():
            total += cpu
    return total


def scratch_dir(name: str) -> tuple[Path, Path]:
    """A bench's scratch work directory (made ADLOOP_WORK_DIR, with the project's jars linked in)
    and the log file its jobs write to."""
    from scripts import services as svc_mod

    scratch = Path(tempfile.mkdtemp(prefix=f"adloop-bench-{name}-"))
    (scratch / "jars").symlink_to(svc_mod.work_dir() / "jars")
    os.environ["ADLOOP_WORK_DIR"] = str(scratch)
    return scratch, Path(tempfile.gettempdir()) / f"{scratch.name}.jobs.log"


def child(spec_path: Path, result_path: Path) -> None:
    """Start one job and time it from building its environment to its end."""
    from jobs import feedback_job

    spec = RunSpec(**json.loads(spec_path.read_text()))
    cfg = _app_config(spec)
    overrides = {
        "execution.checkpointing.dir": (Path(spec.work) / "checkpoints").as_uri(),
        # A restart would replay the input and distort the timing: fail the run instead.
        "restart-strategy.type": "none",
        **json.loads(os.environ.get("ADLOOP_BENCH_FLINK_OVERRIDES", "{}")),
    }
    start_epoch = time.time()
    t0 = time.perf_counter()
    if spec.variant == "passthrough":
        job = _passthrough_job(cfg, spec, overrides)
    else:
        job = feedback_job.run(cfg, wait=False, flink_overrides=overrides)
    t_submit = time.perf_counter()
    execution = job.get_job_execution_result().result()
    t_end = time.perf_counter()
    timing = {
        "start_epoch": start_epoch,
        "wall_s": t_end - t0,
        "submit_s": t_submit - t0,
        "net_s": execution.get_net_runtime() / 1000.0,
        "cpu_s": _jvm_cpu_s(),
    }
    result_path.write_text(json.dumps(timing))


# -- the parent: services, data, schedule, report -------------------------------------------------


def _say(text: str) -> None:
    print(text, flush=True)


def _check_prerequisites() -> None:
    work = Path(os.environ.get("ADLOOP_WORK_DIR", ROOT / ".work"))
    for sub, pattern in (("flink", "flink-sql-connector-kafka-*.jar"), ("kafka", "kafka_2.13-*.jar")):
        if not list((work / "jars" / sub).glob(pattern)):
            raise BenchError(f"{pattern} not found in {work / 'jars' / sub}: run scripts/setup.sh first")
    if shutil.which("java") is None:
        raise BenchError("java not found on PATH: install a JDK 17")


def _write_data(
    bootstrap: str,
    prefix: str,
    sim_kwargs: dict[str, Any],
    allow_empty: bool = False,
    skip: tuple[str, ...] = (),
) -> dict[str, int]:
    """Simulate into ``<prefix>ad.*`` (created with PARTITIONS partitions), leaving out the records
    of the topics in ``skip`` (e.g. ``("ad.auctions",)``); records per topic."""
    from config.app import KafkaConfig
    from scripts import kafka_tools
    from sim.config import SimConfig
    from sim.simulator import Simulator
    from sim.writers import KafkaWriter

    topics = KafkaConfig(topic_prefix=prefix).input_topics()
    kafka_tools.create_topics(bootstrap, topics, partitions=PARTITIONS)
    with KafkaWriter(bootstrap, topic_prefix=prefix) as writer:
        for chunk in Simulator(SimConfig(**sim_kwargs)).run():
            writer.write([r for r in chunk.records if r.topic not in skip] if skip else chunk.records)
    counts = {}
    for topic in topics:
        ends = kafka_tools.end_offsets(bootstrap, topic)
        empty_ok = allow_empty or topic.removeprefix(prefix) in skip
        if len(ends) != PARTITIONS or (min(ends.values()) == 0 and not empty_ok):
            raise BenchError(f"topic {topic}: expected {PARTITIONS} non-empty partitions, found {ends}")
        counts[topic] = sum(ends.values())
    return counts


def _output_times(bootstrap: str, topics: list[str]) -> tuple[float, float]:
    """Earliest and latest Kafka timestamp (epoch s) of the records in ``topics``, read from the
    first and last EDGE records of each partition. The sinks leave the timestamp to the producer,
    which stamps each record when the job hands it over (CreateTime)."""
    from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, TopicPartition

    from scripts import kafka_tools

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-times-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "log_level": 0,
        }
    )
    stamps: list[int] = []
    try:
        for topic in topics:
            for partition, end in kafka_tools.end_offsets(bootstrap, topic).items():
                for start in sorted({0, max(0, end - EDGE)}) if end else ():
                    # Up to the offset, not a record count: a transactional topic's commit markers
                    # take offsets of their own and are never returned.
                    target = start + min(EDGE, end - start)
                    consumer.assign([TopicPartition(topic, partition, start)])
                    got, deadline = 0, time.monotonic() + 30.0
                    while time.monotonic() < deadline:
                        msg = consumer.poll(0.5)
                        if msg is not None and not msg.error():
                            kind, ts = msg.timestamp()
                            if kind != TIMESTAMP_CREATE_TIME:
                                raise BenchError(
                                    f"{topic}: records carry timestamp type {kind}, not CreateTime"
                                )
                            stamps.append(ts)
                            got += 1
                        if consumer.position([TopicPartition(topic, partition)])[0].offset >= target:
                            break
                    else:
                        raise BenchError(
                            f"{topic}[{partition}]: read {got} records, not up to offset {target}, in 30s"
                        )
    finally:
        consumer.close()
    if not stamps:
        raise BenchError(f"no output records in {topics}")
    return min(stamps) / 1000.0, max(stamps) / 1000.0


SUSTAINED = (0.4, 0.9)  # the stretch of the main output that the sustained rate is timed over
POLL_S = 0.1


def sustained_rate(samples: list[tuple[float, int]], records: int) -> float:
    """Input records per second while the output count went from 40% to 90% (SUSTAINED) of its
    final value, from (time, count) samples: a rate after warm-up and before the end-of-input wait, with
    the input's share taken as the output's (both jobs write in step with what they read).

    >>> sustained_rate([(0.0, 0), (1.0, 40), (2.0, 60), (3.0, 90), (9.0, 100)], 1000)
    250.0
    >>> sustained_rate([(0.0, 0)], 1000)
    nan
    """
    lo, hi = SUSTAINED
    final = max((count for _, count in samples), default=0)
    if final == 0:
        return float("nan")
    start = next(t for t, count in samples if count >= lo * final)
    end = next(t for t, count in samples if count >= hi * final)
    return records * (hi - lo) / (end - start) if end > start else float("nan")


class OutputProgress:
    """Samples the record count of one output topic every POLL_S seconds, in a thread."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from confluent_kafka import Consumer

        self.samples: list[tuple[float, int]] = []
        self._topic = topic
        # read_uncommitted: the end offsets of what the job has written, transactions still open
        # included. Committed offsets only move at a checkpoint (every 10 s), too coarse to time a
        # replay of 20-40 s with the exactly-once sinks.
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "bench-progress",
                "isolation.level": "read_uncommitted",
                "log_level": 0,
            }
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        partitions = [TopicPartition(self._topic, p) for p in range(PARTITIONS)]
        while not self._stop.is_set():
            try:
                count = sum(self._consumer.get_watermark_offsets(tp, timeout=5)[1] for tp in partitions)
                self.samples.append((time.time(), count))
            except KafkaException:
                pass  # a slow answer under load: the next sample follows
            self._stop.wait(POLL_S)

    def __enter__(self) -> OutputProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()


def _run_child(spec: RunSpec, timeout_s: float, log: Path) -> dict[str, float]:
    work = Path(spec.work)
    work.mkdir(parents=True)
    spec_path, result_path = work / "spec.json", work / "result.json"
    spec_path.write_text(json.dumps(asdict(spec)))
    cmd = [sys.executable, "-m", "bench.bench_attribution", "_child", str(spec_path), str(result_path)]
    with log.open("ab") as out:
        out.write(f"\n===== {spec.run_id} {spec.variant} p={spec.parallelism} {spec.input_prefix}\n".encode())
        out.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise BenchError(
                f"{spec.variant} p={spec.parallelism} did not finish in {timeout_s:.0f}s "
                f"(output of the job process: {log}; Flink's log: pyflink/log/ in the venv)"
            ) from None
        except BaseException:
            _kill_group(proc)
            raise
    if code != 0 or not result_path.exists():
        raise BenchError(
            f"{spec.variant} p={spec.parallelism} failed with exit status {code} "
            f"(output of the job process: {log}; Flink's log: pyflink/log/ in the venv)"
        )
    return json.loads(result_path.read_text())


def _kill_group(proc: subprocess.Popen) -> None:
    """End the job process we started and everything in its process group. Its gateway JVM can
    outlive it (a mini-cluster whose shutdown hangs), so the group, not the process, must be gone."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader, so a zombie does not keep the group alive
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def timed_run(
    bootstrap: str,
    variant: str,
    parallelism: int,
    size: str,
    records: int,
    scratch: Path,
    log: Path,
    timeout_s: float,
) -> RunResult:
    from scripts import kafka_tools

    run_id = f"bench.{uuid.uuid4().hex[:8]}"
    prefix = FULL_PREFIX if size == "full" else TINY_PREFIX
    spec = RunSpec(variant, parallelism, bootstrap, prefix, run_id, str(scratch / run_id))
    topics = spec.output_topics()
    kafka_tools.create_topics(bootstrap, topics, partitions=PARTITIONS)
    try:
        # The pass-through's one topic, or the rewards: most of the attribution job's output.
        with OutputProgress(
            bootstrap, topics[0] if variant == "passthrough" else topics[OUTPUTS.index("rewards")]
        ) as progress:
            timing = _run_child(spec, timeout_s, log)
        outputs = {t.rsplit(".", 1)[1]: sum(kafka_tools.end_offsets(bootstrap, t).values()) for t in topics}
        first, last = _output_times(bootstrap, topics)
    finally:
        kafka_tools.delete_topics(bootstrap, topics)
        shutil.rmtree(spec.work, ignore_errors=True)
    if variant == "passthrough" and outputs["passthrough"] != records:
        raise BenchError(
            f"pass-through p={parallelism} wrote {outputs['passthrough']} records for {records} read"
        )
    if variant == "attribution" and outputs["rewards"] == 0:
        raise BenchError(f"attribution p={parallelism} wrote no reward rows (log: {log})")
    start, wall = timing["start_epoch"], timing["wall_s"]
    return RunResult(
        variant,
        parallelism,
        size,
        records,
        wall_s=wall,
        submit_s=timing["submit_s"],
        net_s=timing["net_s"],
        first_out_s=first - start,
        span_s=last - first,
        sustained_eps=sustained_rate(progress.samples, records),
        tail_s=start + wall - last,
        cpu_s=timing["cpu_s"],
        outputs=outputs,
        load=os.getloadavg()[0],
    )


# -- summary and report ---------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _over_startup(records: int, totals: list[float], startup: float) -> tuple[float, float]:
    """Median of records / (total - startup) over the runs that took longer than the startup
    estimate (the others show no measurable processing time), and how many of them did."""
    rates = [records / (t - startup) for t in totals if t > startup]
    return _median(rates), float(len(rates))


Summary = dict[int, dict[str, dict[str, float]]]
MEASURES = ("raw_eps", "corrected_eps", "span_eps", "sustained_eps", "cpu_eps")


def summarise(results: list[RunResult]) -> Summary:
    """Per parallelism and job: medians of the timings and of the three throughputs, and ratios."""
    table: Summary = {}
    for p in sorted({r.parallelism for r in results}):
        table[p] = {}
        for variant in VARIANTS:
            full = [r for r in results if (r.parallelism, r.variant, r.size) == (p, variant, "full")]
            tiny = [r for r in results if (r.parallelism, r.variant, r.size) == (p, variant, "tiny")]
            startup = _median([r.wall_s for r in tiny])
            startup_cpu = _median([r.cpu_s for r in tiny])
            table[p][variant] = {
                "runs": len(full),
                "wall_s": _median([r.wall_s for r in full]),
                "wall_min_s": min((r.wall_s for r in full), default=float("nan")),
                "wall_max_s": max((r.wall_s for r in full), default=float("nan")),
                "startup_s": startup,
                "first_out_s": _median([r.first_out_s for r in full]),
                "span_s": _median([r.span_s for r in full]),
                "tail_s": _median([r.tail_s for r in full]),
                "raw_eps": _median([r.records / r.wall_s for r in full]),
                "span_eps": _median([r.records / r.span_s for r in full if r.span_s > 0]),
                "sustained_eps": _median(
                    [r.sustained_eps for r in full if r.sustained_eps == r.sustained_eps]
                ),
                "cpu_s": _median([r.cpu_s for r in full]),
                "startup_cpu_s": startup_cpu,
            }
            records = full[0].records if full else 0
            for key, totals, fixed in (
                ("corrected_eps", [r.wall_s for r in full], startup),
                ("cpu_eps", [r.cpu_s for r in full], startup_cpu),
            ):
                table[p][variant][key], table[p][variant][f"{key}_n"] = _over_startup(records, totals, fixed)
        base, attr = table[p]["passthrough"], table[p]["attribution"]
        table[p]["ratio"] = {m: attr[m] / base[m] if base[m] else float("nan") for m in MEASURES}
    return table


def _fmt(x: float, digits: int = 0) -> str:
    return "–" if x != x else f"{x:,.{digits}f}"


def _fmt_n(v: dict[str, float], key: str) -> str:
    """A corrected figure, with the number of runs it rests on when that is not all of them."""
    n, runs = v[f"{key}_n"], v["runs"]
    return _fmt(v[key]) + (f" ({n:.0f} of {runs:.0f} runs)" if n < runs else "")


def verdict(table: Summary) -> str:
    """Judged on the sustained ratio: a streaming job runs for days, so its rate after warm-up is
    what counts. Over a short input the processing span is mostly the JIT compiling the job's
    code (see the results file), and the startup estimate from separate runs is noisier than the
    pass-through's whole processing time on a shared machine."""
    sustained = {p: row["ratio"]["sustained_eps"] for p, row in table.items()}
    worst = min(sustained.values())
    status = "met" if worst >= TARGET_RATIO else "not met"
    figures = "; ".join(
        f"p={p}: {_fmt(row['ratio']['sustained_eps'], 2)} sustained, "
        f"{row['ratio']['span_eps']:.2f} processing span, {row['ratio']['raw_eps']:.2f} raw, "
        f"{_fmt(row['ratio']['corrected_eps'], 2)} startup-corrected, "
        f"{_fmt(row['ratio']['cpu_eps'], 2)} per CPU-second"
        for p, row in table.items()
    )
    return (
        f"Verdict: target attribution / pass-through >= {TARGET_RATIO} **{status}**: "
        f"lowest sustained ratio {_fmt(worst, 2)} ({figures})."
    )


def render(
    table: Summary,
    results: list[RunResult],
    args: argparse.Namespace,
    counts: dict[str, int],
    tiny_records: int,
    started: dt.datetime,
    elapsed_s: float,
) -> str:
    records = sum(counts.values())
    per_topic = ", ".join(f"{t.rsplit('.', 1)[-1]} {n:,}" for t, n in counts.items())
    lines = [
        "# Attribution throughput vs a Flink SQL pass-through",
        "",
        f"Command: `python -m bench.bench_attribution --days {args.days} --repeats {args.repeats}`",
        "",
        f"Date: {started:%Y-%m-%d %H:%M} UTC (the whole bench took {elapsed_s / 60:.1f} min). "
        f"Machine: {os.cpu_count()} cores (shared), {platform.machine()}, "
        f"Python {platform.python_version()}, "
        f"{_flink_version()} on the local mini-cluster, one Kafka broker on loopback started by the bench; "
        f"{_code_version()}.",
        "",
        f"Data: the simulator, {args.days} simulated day{'s' if args.days > 1 else ''} (seed 7, default "
        "market and noise), written once: "
        f"{records:,} input records ({per_topic}), {PARTITIONS} partitions per topic. "
        f"Startup estimate: the same jobs over a tiny input of {tiny_records:,} records.",
        "",
        f"1-minute load average during the runs: {min(r.load for r in results):.1f}–"
        f"{max(r.load for r in results):.1f} on {os.cpu_count()} cores (other work shares the machine).",
        "",
        "Medians over the runs; records/s are input records per second.",
        "",
        "| parallelism | job | runs | wall s (min–max) | startup s (tiny input) | records/s raw | "
        "records/s startup-corrected | records/s processing span | records/s sustained |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p, row in table.items():
        for variant in VARIANTS:
            v = row[variant]
            lines.append(
                f"| {p} | {variant} | {v['runs']:.0f} | {_fmt(v['wall_s'], 1)} "
                f"({_fmt(v['wall_min_s'], 1)}–{_fmt(v['wall_max_s'], 1)}) | {_fmt(v['startup_s'], 1)} | "
                f"{_fmt(v['raw_eps'])} | {_fmt_n(v, 'corrected_eps')} | {_fmt(v['span_eps'])} | "
                f"{_fmt(v['sustained_eps'])} |"
            )
        ratio = row["ratio"]
        lines.append(
            f"| {p} | **attribution / pass-through** | | | | **{_fmt(ratio['raw_eps'], 2)}** | "
            f"**{_fmt(ratio['corrected_eps'], 2)}** | **{_fmt(ratio['span_eps'], 2)}** | "
            f"**{_fmt(ratio['sustained_eps'], 2)}** |"
        )
    lines += ["", verdict(table), ""]
    lines += [
        "Where a run's time goes (medians, seconds): from building the job to its first output record, "
        "first to last output record, last output record to the job's end; and the CPU time of the JVM "
        "running it, with records per CPU-second over the tiny input's CPU time.",
        "",
        "| parallelism | job | to first output | first to last output | to the end | JVM CPU s "
        "(tiny input) | records per CPU-s |",
        "|---|---|---|---|---|---|---|",
    ]
    for p, row in table.items():
        for variant in VARIANTS:
            v = row[variant]
            lines.append(
                f"| {p} | {variant} | {_fmt(v['first_out_s'], 1)} | {_fmt(v['span_s'], 1)} | "
                f"{_fmt(v['tail_s'], 1)} | {_fmt(v['cpu_s'], 1)} ({_fmt(v['startup_cpu_s'], 1)}) | "
                f"{_fmt_n(v, 'cpu_eps')} |"
            )
        lines.append(
            f"| {p} | **attribution / pass-through** | | | | | **{_fmt(row['ratio']['cpu_eps'], 2)}** |"
        )
    lines += [
        "",
        "How it is measured:",
        "- raw = input records / wall time from building the job's table environment until the job "
        "finished. "
        "startup-corrected = input records / (wall − startup), startup being the median wall time of "
        "the same job at the same parallelism over the tiny input (planning, mini-cluster start, "
        "submission, task deployment, Kafka metadata, and the wait for the final checkpoint at the end "
        "of a bounded input). processing span = input records / (last − first output record), from the "
        "Kafka CreateTime the sinks' producers stamp on each record: it leaves out startup and the "
        "end-of-input checkpoint wait, which is random in 0–10 s (checkpoints every 10 s). records per "
        "CPU-s = input records / (JVM CPU − the tiny input's median JVM CPU). A run not above its "
        "startup estimate gives no corrected figure; when some did not, the count of runs that did is "
        "shown. On a shared machine the startup estimates spread by more than the pass-through's whole "
        "processing time, so its startup-corrected and per-CPU figures are rough. sustained = input "
        f"records × {SUSTAINED[1] - SUSTAINED[0]:.1f} / the time the main output topic (the pass-through's "
        f"one topic, the attribution job's rewards) took to grow from {SUSTAINED[0]:.0%} to "
        f"{SUSTAINED[1]:.0%} of its final count, sampled every {POLL_S:g} s: the rate after the first "
        "stretch of warm-up (JIT compilation of the job's code) and before the end-of-input wait. "
        "The verdict uses it: the job runs for days in production.",
        "- pass-through: the feedback job's three raw Kafka source tables (`register_sources`, including "
        "their event-time column and watermark) with `payload` inserted unchanged into one Kafka sink "
        "(format raw, at-least-once). attribution: the feedback job as `jobs.feedback_job.run` starts "
        "it with `job.learners: false`, all in SQL (validation, DLQ, dedup, late split, click and "
        "conversion attribution, reward rows to Kafka and Parquet, the learners' micro-batches to "
        "Kafka); the Python learner operator is not part of it. "
        "Same topics, same parallelism; each run has its own consumer group and output topics.",
        "- Each run is a fresh Python process and mini-cluster with flink-conf/config.yaml (RocksDB, "
        "exactly-once checkpoints every 10 s), restarts off. The two jobs alternate, their order "
        "flipping between repetitions. The machine is shared and has 2 cores: compare medians.",
        "",
        "Every run (seconds; output records per topic):",
        "",
        "| # | parallelism | job | input | records | wall | submit | Flink net | to first out | "
        "first to last out | to end | sustained rec/s | JVM CPU | load avg | outputs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(results, 1):
        outs = ", ".join(f"{k} {v:,}" for k, v in r.outputs.items())
        lines.append(
            f"| {i} | {r.parallelism} | {r.variant} | {r.size} | {r.records:,} | {r.wall_s:.1f} | "
            f"{r.submit_s:.1f} | {r.net_s:.1f} | {r.first_out_s:.1f} | {r.span_s:.1f} | {r.tail_s:.1f} | "
            f"{_fmt(r.sustained_eps)} | "
            f"{r.cpu_s:.1f} | {r.load:.1f} | {outs} |"
        )
    return "\n".join(lines) + "\n"


def _code_version() -> str:
    """The commit the bench ran, and whether the job's code differed from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "code: not a git checkout"
    changed = git("status", "--porcelain", "--", *JOB_CODE)
    note = f", with uncommitted changes: {' '.join(changed.split()[1::2])}" if changed else ""
    return f"code: commit {commit}{note}"


def _flink_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"apache-flink {version('apache-flink')}"
    except PackageNotFoundError:
        return "apache-flink"


def print_table(table: Summary) -> None:
    _say("")
    _say(
        f"{'p':>2} {'job':<12} {'wall s':>7} {'startup s':>9} {'span s':>7} "
        f"{'rec/s raw':>10} {'corrected':>10} {'span':>10} {'sustained':>10} {'per CPU-s':>10}"
    )
    for p, row in table.items():
        for variant in VARIANTS:
            v = row[variant]
            figures = "".join(f" {_fmt(v[m]):>10}" for m in MEASURES)
            _say(
                f"{p:>2} {variant:<12} {_fmt(v['wall_s'], 1):>7} {_fmt(v['startup_s'], 1):>9} "
                f"{_fmt(v['span_s'], 1):>7}{figures}"
            )
        ratios = "".join(f" {_fmt(row['ratio'][m], 2):>10}" for m in MEASURES)
        _say(f"{p:>2} {'ratio':<12} {'':>7} {'':>9} {'':>7}{ratios}")
    _say(verdict(table).replace("**", ""))


def schedule(repeats: int, startup_repeats: int) -> list[tuple[str, int, str]]:
    """(job, parallelism, input) in run order: the jobs alternate, their order flipping each time."""
    runs = []
    for rep in range(repeats):
        for p in PARALLELISMS:
            order = VARIANTS if (rep + p) % 2 else VARIANTS[::-1]
            for variant in order:
                if rep < startup_repeats:
                    runs.append((variant, p, "tiny"))
                runs.append((variant, p, "full"))
    return runs


def bench(args: argparse.Namespace) -> int:
    from scripts import services as svc

    started = dt.datetime.now(dt.UTC)
    t_start = time.monotonic()
    jars = svc.work_dir() / "jars"
    scratch = Path(tempfile.mkdtemp(prefix="adloop-bench-attribution-"))
    (scratch / "jars").symlink_to(jars)
    # Outside the scratch directory, so it outlives a failed run for the error message to point at.
    log = Path(tempfile.gettempdir()) / f"{scratch.name}.jobs.log"
    previous = os.environ.get("ADLOOP_WORK_DIR")
    os.environ["ADLOOP_WORK_DIR"] = str(scratch)
    results: list[RunResult] = []
    ok = False
    try:
        _check_prerequisites()
        _say(f"[bench] scratch {scratch}; starting Kafka ...")
        bootstrap = svc.start(ttl_s=4 * 3600, owner_pid=os.getpid()).kafka_bootstrap
        _say(f"[bench] Kafka on {bootstrap}; simulating {args.days} days into it ...")
        t0 = time.monotonic()
        counts = _write_data(bootstrap, FULL_PREFIX, {"days": args.days})
        records = sum(counts.values())
        per_topic = ", ".join(f"{t.rsplit('.', 1)[-1]} {n:,}" for t, n in counts.items())
        _say(f"[bench] wrote {records:,} records ({per_topic}) in {time.monotonic() - t0:.0f}s")
        tiny_records = sum(_write_data(bootstrap, TINY_PREFIX, TINY_SIM, allow_empty=True).values())
        _say(f"[bench] wrote {tiny_records:,} records for the startup estimate")

        runs = schedule(args.repeats, args.startup_repeats)
        timeout = args.timeout or max(600.0, 150.0 * args.days)
        for i, (variant, p, size) in enumerate(runs, 1):
            n = records if size == "full" else tiny_records
            r = timed_run(bootstrap, variant, p, size, n, scratch, log, timeout)
            results.append(r)
            span_eps = n / r.span_s if r.span_s > 0 else float("nan")
            _say(
                f"[bench] {i:>2}/{len(runs)} {variant:<11} p={p} {size:<4} wall {r.wall_s:5.1f}s "
                f"(submit {r.submit_s:4.1f}, first out {r.first_out_s:4.1f}, span {r.span_s:5.1f}, "
                f"tail {r.tail_s:4.1f}) {n / r.wall_s:>7,.0f} rec/s raw, {_fmt(span_eps):>7} span, "
                f"{_fmt(r.sustained_eps):>7} sustained; "
                f"load {r.load:.1f}; out {r.outputs}"
            )
        table = summarise(results)
        print_table(table)
        text = render(table, results, args, counts, tiny_records, started, time.monotonic() - t_start)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        _say(f"[bench] wrote {out}")
        ok = True
        return 0
    finally:
        stopped = svc.stop()
        _say(f"[bench] stopped {', '.join(stopped) or 'nothing'}")
        if previous is None:
            os.environ.pop("ADLOOP_WORK_DIR", None)
        else:
            os.environ["ADLOOP_WORK_DIR"] = previous
        if args.keep:
            _say(f"[bench] kept {scratch}; output of the job processes: {log}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
            if ok:
                log.unlink(missing_ok=True)
            elif log.exists():
                _say(f"[bench] output of the job processes kept: {log}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_child"]:
        child(Path(argv[1]), Path(argv[2]))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_attribution", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--days", type=int, default=30, help="simulated days of input (~9.4k records a day)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per job and parallelism")
    parser.add_argument(
        "--startup-repeats", type=int, default=2, help="runs over the tiny input per job and parallelism"
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds per job (default 20 x days, >= 300)"
    )
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="results file (Markdown)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory and the job output")
    args = parser.parse_args(argv)
    if args.days < 1 or args.repeats < 1 or not 1 <= args.startup_repeats <= args.repeats:
        parser.error("--days and --repeats must be >= 1, --startup-repeats in 1..--repeats")
    try:
        return bench(args)
    except BenchError as e:
        print(f"bench_attribution: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench_attribution: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
