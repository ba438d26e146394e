"""Benchmark: the feedback job end to end, from events in Kafka to policies in Redis.

    python -m bench.bench_feedback [--days 30] [--repeats 2] [--variants sql,learners,naive]
        [--rates 10000,1000,100] [--part all|throughput|freshness] [--out ...]

Starts its own Kafka broker and Redis on loopback and writes ``bench/results/feedback.md``.

Throughput (bounded runs over one simulated data set, medians of ``--repeats``, p = 1 and 2; the
variants' order flips each repetition):

- ``learners``: the whole job (``feedback_job.run``): SQL attribution and micro-batches, the keyed
  learner operator, policies to Redis;
- ``sql``: the same job with the learners removed (``job.learners: false``);
- ``naive``: the same SQL with its reward rows going one by one into a Python operator that keeps a
  pickled River ThompsonSampling per key (``bench/naive_operator.py``) and publishes to Redis.

The default input is 30 simulated days (~283k records, spans of 70-100 s): over 10 days the JIT
compiler still took a quarter of the JVM's CPU, and the whole job, with more generated code to
compile, warmed up later than SQL alone (learners/sql 0.61-0.72 over 10 days). ``naive`` takes
~10 min a run over 30 days; ``--variants sql,learners`` leaves it out.

Two rates per run. **Sustained** (the verdict's): input records/s while the rewards topic went
from 40% to 90% of its final count (``bench_attribution.sustained_rate``), the pace after warm-up
that a job running for days sees. **Span**: input records / processing span, first to last output
record of the run's topics by the Kafka CreateTime the sinks stamp (for ``learners`` and ``naive``
the last output is the last policy update, written after its Redis publish), so it includes the
warm-up. Ratios: learners / sql (target >= 0.8) and learners / naive (target >= 20).

Freshness (``--rates``): the job (learners, p = 1) runs unbounded on live topics while a load
generator writes impressions and clicks at a fixed rate, with ``ts`` = now. Every half second a
probe impression of a campaign of its own is written with a click; freshness is the time from
producing the click to a subscribed ServingClient installing the probe campaign's first policy
version. Target: p99 <= 1 s at 10k events/s. Probes not seen within ``--probe-timeout`` count as
that timeout (so p99 is a lower bound when any are missing; their number is reported).

``ADLOOP_BENCH_FLINK_OVERRIDES`` (a JSON object of Flink keys) changes every run's Flink settings
for an experiment, e.g. ``'{"python.execution-mode": "thread"}'``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.bench_attribution import (
    SUSTAINED,
    BenchError,
    OutputProgress,
    _check_prerequisites,
    _code_version,
    _flink_version,
    _fmt,
    _jvm_cpu_s,
    _kill_group,
    _output_times,
    _write_data,
    scratch_dir,
    sustained_rate,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "feedback.md"
VARIANTS = ("sql", "learners", "naive")
PARTITIONS = 2
INPUT_PREFIX = "bench.fb."
OUTPUTS = {
    "sql": ("rewards", "batches", "late", "dlq"),
    "learners": ("rewards", "batches", "late", "dlq", "policy_updates"),
    "naive": ("rewards", "late", "dlq", "policy_updates"),
    "fresh": ("rewards", "batches", "late", "dlq", "policy_updates"),
}


@dataclass(frozen=True)
class RunSpec:
    variant: str  # sql | learners | naive | fresh
    parallelism: int
    bootstrap: str
    redis_url: str
    run_id: str
    work: str
    input_prefix: str = INPUT_PREFIX
    duration_s: float = 0.0  # fresh: how long the unbounded job runs before it is cancelled
    rest_port: int = 0  # fresh: the mini-cluster's REST port (0: none)

    def outputs(self) -> list[str]:
        """The Kafka topics this run's job writes."""
        cfg = app_config(self)
        return [cfg.kafka.topic(name) for name in OUTPUTS[self.variant]]


def app_config(spec: RunSpec) -> Any:
    from config import app as cfg_mod

    outputs = OUTPUTS["learners"]
    cfg = cfg_mod.AppConfig().replace(
        kafka={
            "bootstrap_servers": spec.bootstrap,
            "topic_prefix": spec.input_prefix,
            "bounded": spec.variant != "fresh",
            "group_id": f"{spec.run_id}.group",
            **{f"{name}_topic": f"{spec.run_id}.{name}" for name in outputs},
        },
        redis={"url": spec.redis_url, "key_prefix": spec.run_id},
        job={
            "parallelism": spec.parallelism,
            "name": f"bench-{spec.variant}",
            "learners": spec.variant != "sql",
        },
        tables={"rewards_path": str(Path(spec.work) / "rewards")},
    )
    return cfg


# -- the child: one job ---------------------------------------------------------------------------


def _naive_job(cfg: Any, spec: RunSpec, overrides: dict[str, str]) -> Any:
    from pyflink.common.typeinfo import Types

    from bench.naive_operator import OUTPUT_TYPE, NaiveRiverOperator
    from jobs import feedback_job, planner
    from jobs.runtime import environments
    from sql.outputs import SQL_OUTPUTS

    env, t_env = environments(spec.parallelism, overrides)
    statements = feedback_job.build(t_env, cfg)
    # (decision_id, ..., campaign_id, agent, action, reward, ...) one row per reward, into Python.
    rewards = planner.attach_with_stream(t_env, statements, t_env.from_path(SQL_OUTPUTS["rewards"]))
    statements = t_env.create_statement_set()
    updates = rewards.key_by(lambda r: f"{r.campaign_id}|{r.agent}", key_type=Types.STRING()).process(
        NaiveRiverOperator(cfg.redis.url, cfg.redis.key_prefix, cfg.publish.interval_ms),
        output_type=OUTPUT_TYPE,
    )
    feedback_job.add_policy_updates_sink(t_env, statements, cfg, updates)
    statements.attach_as_datastream()
    return env.execute_async(cfg.job.name)


def child(spec_path: Path, result_path: Path) -> None:
    from jobs import feedback_job

    spec = RunSpec(**json.loads(spec_path.read_text()))
    cfg = app_config(spec)
    overrides = {
        "execution.checkpointing.dir": (Path(spec.work) / "checkpoints").as_uri(),
        "restart-strategy.type": "none",
        **json.loads(os.environ.get("ADLOOP_BENCH_FLINK_OVERRIDES", "{}")),
    }
    if spec.rest_port:
        overrides["rest.bind-port"] = str(spec.rest_port)
    t0 = time.perf_counter()
    job = (
        _naive_job(cfg, spec, overrides)
        if spec.variant == "naive"
        else feedback_job.run(cfg, wait=False, flink_overrides=overrides)
    )
    (Path(spec.work) / "started").touch()
    if spec.variant == "fresh":
        time.sleep(spec.duration_s)
        job.cancel().result()
    else:
        job.get_job_execution_result().result()
    result_path.write_text(json.dumps({"wall_s": time.perf_counter() - t0, "cpu_s": _jvm_cpu_s()}))


def _start_child(spec: RunSpec, log: Path) -> subprocess.Popen:
    work = Path(spec.work)
    work.mkdir(parents=True)
    (work / "spec.json").write_text(json.dumps(asdict(spec)))
    cmd = [
        sys.executable,
        "-m",
        "bench.bench_feedback",
        "_child",
        str(work / "spec.json"),
        str(work / "result.json"),
    ]
    out = log.open("ab")
    out.write(f"\n===== {spec.run_id} {spec.variant} p={spec.parallelism}\n".encode())
    out.flush()
    return subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _finish_child(proc: subprocess.Popen, spec: RunSpec, timeout_s: float, log: Path) -> dict[str, float]:
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise BenchError(
            f"{spec.variant} p={spec.parallelism} did not finish in {timeout_s:.0f}s (log: {log})"
        ) from None
    except BaseException:
        _kill_group(proc)
        raise
    result = Path(spec.work) / "result.json"
    if code != 0 or not result.exists():
        raise BenchError(f"{spec.variant} p={spec.parallelism} failed with exit status {code} (log: {log})")
    return json.loads(result.read_text())


# -- throughput -----------------------------------------------------------------------------------


def throughput_run(
    svc: Any,
    variant: str,
    p: int,
    records: int,
    scratch: Path,
    log: Path,
    input_prefix: str = INPUT_PREFIX,
) -> dict[str, Any]:
    from scripts import kafka_tools
    from state.policy_store import RedisPolicyStore

    run_id = f"bench.{uuid.uuid4().hex[:8]}"
    spec = RunSpec(
        variant, p, svc.kafka_bootstrap, svc.redis_url, run_id, str(scratch / run_id), input_prefix
    )
    topics = spec.outputs()
    kafka_tools.create_topics(svc.kafka_bootstrap, topics, partitions=PARTITIONS)
    store = RedisPolicyStore(svc.redis_url, key_prefix=run_id)
    try:
        # The rewards topic for every variant: its count follows the input in all three (policy
        # updates follow processing time: one per key and micro-batch).
        with OutputProgress(svc.kafka_bootstrap, topics[OUTPUTS[variant].index("rewards")]) as progress:
            timing = _finish_child(_start_child(spec, log), spec, 1800, log)
        first, last = _output_times(svc.kafka_bootstrap, topics)
        counts = {
            t.rsplit(".", 1)[1]: sum(kafka_tools.end_offsets(svc.kafka_bootstrap, t).values()) for t in topics
        }
        policies = len(store.load_all())
    finally:
        store.purge()
        store.close()
        kafka_tools.delete_topics(svc.kafka_bootstrap, topics)
        shutil.rmtree(spec.work, ignore_errors=True)
    if variant != "sql" and policies == 0:
        raise BenchError(f"{variant} p={p} published no policy to Redis (log: {log})")
    span = last - first
    return {
        "variant": variant,
        "parallelism": p,
        "span_s": span,
        "rate": records / span,
        "sustained": sustained_rate(progress.samples, records),
        "wall_s": timing["wall_s"],
        "cpu_s": timing["cpu_s"],
        "policies": policies,
        "outputs": counts,
        "load": os.getloadavg()[0],
    }


# -- freshness ------------------------------------------------------------------------------------


class LoadGenerator:
    """Valid impressions (10% clicked) at ``rate`` events/s with ts = now, plus probes on demand.

    Events are rendered from byte templates and pools of pre-drawn users and features: the
    generator shares the machine with the job, and ``json.dumps`` per event took ~0.4 of a core at
    10k events/s, CPU the job under test then lacked. The output is the same JSON as the contract's.
    """

    POOL = 4096  # pre-drawn (user, features) combinations, picked at random per impression

    def __init__(self, bootstrap: str, prefix: str, rate: float, feature_dim: int = 8) -> None:
        from confluent_kafka import Producer

        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": 0})
        self.impressions, self.clicks = f"{prefix}ad.impressions", f"{prefix}ad.clicks"
        self.rate = rate
        self.rng = random.Random(7)
        self.sent = 0
        self._n = 0
        self._run = uuid.uuid4().hex[:6]  # impression ids unique across runs sharing a broker
        self._contexts = [
            (
                f"u{self.rng.randrange(5000)}",
                json.dumps([round(self.rng.random(), 3) for _ in range(feature_dim)]),
            )
            for _ in range(self.POOL)
        ]

    def _impression(self, campaign: str, creative: str, ts: int) -> tuple[str, bytes]:
        self._n += 1
        imp_id = f"i{self._n}-{self._run}"
        user, features = self._contexts[self.rng.randrange(self.POOL)]
        event = (
            f'{{"schema_version": 1, "event_id": "e{imp_id}", "impression_id": "{imp_id}", "ts": {ts}, '
            f'"user_id": "{user}", "campaign_id": "{campaign}", "segment": "s0", '
            f'"creative_id": "{creative}", "bid_price": 0.5, "win_price": 0.3, "features": {features}, '
            f'"decisions": [{{"agent": "creative", "action": "{creative}", "propensity": 0.5, '
            f'"policy_version": 0}}]}}'
        )
        return imp_id, event.encode()

    @staticmethod
    def _click(imp_id: str, ts: int) -> bytes:
        event = f'{{"schema_version": 1, "event_id": "k{imp_id}", "impression_id": "{imp_id}", "ts": {ts}}}'
        return event.encode()

    def _send(self, topic: str, event: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, event)
                break
            except BufferError:
                self.producer.poll(0.01)
        self.sent += 1

    def probe(self, campaign: str) -> float:
        """An impression and its click for ``campaign``; returns when the click was produced."""
        imp_id, imp = self._impression(campaign, f"{campaign}-cr0", _now_ms())
        self._send(self.impressions, imp)
        self.producer.flush(1.0)
        self._send(self.clicks, self._click(imp_id, _now_ms()))
        produced = time.time()
        self.producer.poll(0)
        return produced

    def run_for(self, seconds: float, stop: threading.Event) -> None:
        start, done = time.monotonic(), 0
        campaigns = [f"c{i:02d}" for i in range(20)]
        creatives = [f"cr{i}" for i in range(4)]
        while not stop.is_set() and time.monotonic() - start < seconds:
            due = int((time.monotonic() - start) * self.rate)
            ts = _now_ms()
            while done < due:
                imp_id, imp = self._impression(self.rng.choice(campaigns), self.rng.choice(creatives), ts)
                self._send(self.impressions, imp)
                done += 1
                if self.rng.random() < 0.1 and done < due:
                    self._send(self.clicks, self._click(imp_id, ts))
                    done += 1
            self.producer.poll(0)
            time.sleep(0.002)
        self.producer.flush(30)


def _now_ms() -> int:
    return int(time.time() * 1000)


def fresh_spec(svc: Any, scratch: Path, duration_s: float, rest_port: int = 0) -> RunSpec:
    """A live run of the whole job (p = 1) on input topics of its own, for ``duration_s``."""
    run_id = f"bench.{uuid.uuid4().hex[:8]}"
    return RunSpec(
        "fresh",
        1,
        svc.kafka_bootstrap,
        svc.redis_url,
        run_id,
        str(scratch / run_id),
        f"{run_id}.in.",
        duration_s=duration_s,
        rest_port=rest_port,
    )


def freshness_run(
    svc: Any, rate: float, args: argparse.Namespace, scratch: Path, log: Path
) -> dict[str, Any]:
    from config.app import KafkaConfig
    from scripts import kafka_tools
    from state.policy_store import RedisPolicyStore
    from state.serving_client import ServingClient

    spec = fresh_spec(svc, scratch, args.warmup + args.fresh_seconds + args.probe_timeout + 120)
    run_id, prefix = spec.run_id, spec.input_prefix
    topics = KafkaConfig(topic_prefix=prefix).input_topics() + spec.outputs()
    kafka_tools.create_topics(svc.kafka_bootstrap, topics, partitions=PARTITIONS)
    store = RedisPolicyStore(svc.redis_url, key_prefix=run_id)
    seen: dict[str, float] = {}
    client = ServingClient(
        store, seed=0, poll_interval_s=0.05, on_update=lambda r: seen.setdefault(r.campaign_id, time.time())
    )
    gen = LoadGenerator(svc.kafka_bootstrap, prefix, rate)
    proc = _start_child(spec, log)
    probes: dict[str, float] = {}
    try:
        if not client.start(wait_s=10):
            raise BenchError("the serving client could not reach Redis")
        # Live: wait until a probe comes through the idle job (deployment, first checkpoint).
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise BenchError(f"freshness job exited early (log: {log})")
            key = f"warm{len(probes)}"
            probes[key] = gen.probe(key)
            time.sleep(2.0)
            if any(k in seen for k in probes):
                break
            if time.monotonic() > deadline:
                raise BenchError(f"no policy reached Redis within 300s of starting the job (log: {log})")
        probes.clear()
        stop = threading.Event()
        load = threading.Thread(
            target=gen.run_for, args=(args.warmup + args.fresh_seconds, stop), daemon=True
        )
        load.start()
        time.sleep(args.warmup)
        t_load = time.monotonic()
        i = 0
        while load.is_alive() and time.monotonic() - t_load < args.fresh_seconds:
            key = f"probe{i:04d}"
            probes[key] = gen.probe(key)
            i += 1
            time.sleep(0.5)
        load.join()
        sent_rate = gen.sent / (args.warmup + args.fresh_seconds)
        deadline = time.monotonic() + args.probe_timeout
        while time.monotonic() < deadline and not all(k in seen for k in probes):
            time.sleep(0.2)
    finally:
        client.stop()
        _kill_group(proc)
        store.purge()
        store.close()
        kafka_tools.delete_topics(svc.kafka_bootstrap, topics)
        shutil.rmtree(spec.work, ignore_errors=True)
    latencies = sorted(
        min(seen[k] - t, args.probe_timeout) if k in seen else args.probe_timeout for k, t in probes.items()
    )
    missing = sum(k not in seen for k in probes)
    return {
        "rate": rate,
        "sent_rate": sent_rate,
        "probes": len(latencies),
        "missing": missing,
        "p50": _pct(latencies, 50),
        "p99": _pct(latencies, 99),
        "max": latencies[-1] if latencies else float("nan"),
    }


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, round(q / 100 * len(values) + 0.5) - 1))]


# -- the report -----------------------------------------------------------------------------------


def _median_of(runs: list[dict[str, Any]], variant: str, p: int, key: str) -> float:
    # A run too short for a sustained stretch has NaN there; the others still make a median.
    values = [
        r[key] for r in runs if r["variant"] == variant and r["parallelism"] == p and not math.isnan(r[key])
    ]
    return statistics.median(values) if values else float("nan")


def render(runs: list[dict], fresh: list[dict], args: argparse.Namespace, records: int, started: str) -> str:
    lines = [
        "# The feedback job end to end: throughput and freshness",
        "",
        f"Command: `python -m bench.bench_feedback --days {args.days} --repeats {args.repeats} "
        f"--parallelisms {','.join(map(str, args.parallelisms))} --variants {','.join(args.variants)} "
        f"--rates {args.rates} --part {args.part}`",
        "",
        f"Date: {started} UTC. Machine: {os.cpu_count()} cores (shared), {platform.machine()}, Python "
        f"{platform.python_version()}, {_flink_version()} on the local mini-cluster; Kafka and Redis on "
        f"loopback, started by the bench; {_code_version()}.",
    ]
    if runs:
        lines += _throughput_section(runs, args, records)
    if fresh:
        lines += _freshness_section(fresh, args)
    return "\n".join(lines) + "\n"


def _throughput_section(runs: list[dict], args: argparse.Namespace, records: int) -> list[str]:
    lines = [
        "",
        f"## Throughput ({records:,} input records: {args.days} simulated days, "
        f"{PARTITIONS} partitions a topic)",
        "",
        f"Medians. Sustained: input records/s while the rewards went from {SUSTAINED[0]:.0%} to "
        f"{SUSTAINED[1]:.0%} of their count, after warm-up (the verdict's measure). Span: input records / "
        "processing span (first to last output record), warm-up included.",
        "",
        "| parallelism | learners (whole job) sustained rec/s | sql only | naive | learners / sql (>= 0.8) "
        "| learners / naive (>= 20) | span rec/s: learners, sql, naive | span learners / sql |",
        "|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for p in args.parallelisms:
        full, sql, naive = (_median_of(runs, v, p, "sustained") for v in ("learners", "sql", "naive"))
        spans = [_median_of(runs, v, p, "rate") for v in ("learners", "sql", "naive")]
        cells, verdict = [], []
        for name, base, target in (("sql", sql, 0.8), ("naive", naive, 20.0)):
            if math.isnan(full) or math.isnan(base):
                cells.append("not run")
                continue
            cells.append(f"**{full / base:.2f}**")
            met = "met" if full / base >= target else "not met"
            verdict.append(f"learners/{name} {full / base:.2f} ({met})")
        rates = " | ".join(_rate(x) for x in (full, sql, naive))
        span_ratio = _fmt(spans[0] / spans[1], 2)
        lines.append(
            f"| {p} | {rates} | {' | '.join(cells)} | {', '.join(_rate(x) for x in spans)} | {span_ratio} |"
        )
        verdicts.append(f"p={p}: {', '.join(verdict) or 'no ratio (a variant was not run)'}")
        # Each repetition runs the variants back to back: their ratio within one repetition shows
        # how much of the spread is the machine's.
        pairs = [
            _fmt(learners["sustained"] / sql_run["sustained"], 2)
            for sql_run, learners in zip(
                [r for r in runs if r["variant"] == "sql" and r["parallelism"] == p],
                [r for r in runs if r["variant"] == "learners" and r["parallelism"] == p],
                strict=False,  # a run that failed leaves its repetition without a pair
            )
        ]
        if pairs:
            verdicts[-1] += f" (per repetition: {', '.join(pairs)})"
    lines += [
        "",
        "Verdict (sustained): " + "; ".join(verdicts) + ".",
        "",
        "Every run:",
        "",
        "| variant | p | sustained rec/s | span s | span rec/s | wall s | JVM CPU s | policies | load "
        "| outputs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['variant']} | {r['parallelism']} | {_fmt(r['sustained'])} | {r['span_s']:.1f} | "
            f"{r['rate']:,.0f} | {r['wall_s']:.1f} | {r['cpu_s']:.0f} | {r['policies']} | {r['load']:.1f} | "
            f"{r['outputs']} |"
        )
    return lines


def _rate(x: float) -> str:
    """A median rate; NaN means no run of that variant."""
    return "not run" if math.isnan(x) else f"{x:,.0f}"


def _freshness_section(fresh: list[dict], args: argparse.Namespace) -> list[str]:
    lines = [
        "",
        "## Freshness: click in Kafka to the new policy version at a subscriber",
        "",
        "Settings: the defaults of flink-conf/adloop.yaml and flink-conf/config.yaml; p = 1; "
        + f"{args.fresh_seconds:g} s of probes after {args.warmup:g} s of load; "
        f"a probe not seen within {args.probe_timeout:g} s counts as that.",
        "",
        "| target events/s | produced events/s | probes | not seen | p50 s | p99 s (<= 1) | max s |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in fresh:
        lines.append(
            f"| {f['rate']:,.0f} | {f['sent_rate']:,.0f} | {f['probes']} | {f['missing']} | "
            f"{f['p50']:.3f} | **{f['p99']:.3f}** | {f['max']:.3f} |"
        )
    return lines


def bench(args: argparse.Namespace) -> int:
    from scripts import services as svc_mod

    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    scratch, log = scratch_dir("feedback")
    try:
        _check_prerequisites()
        svc = svc_mod.start(ttl_s=4 * 3600, owner_pid=os.getpid())
        print(f"[bench] Kafka {svc.kafka_bootstrap}, Redis {svc.redis_url}; job output in {log}", flush=True)
        records = 0
        if args.part != "freshness":
            records = sum(_write_data(svc.kafka_bootstrap, INPUT_PREFIX, {"days": args.days}).values())
            print(f"[bench] wrote {records:,} records", flush=True)
        runs = []
        plan = run_order(args.variants, args.parallelisms, args.repeats)
        plan = plan if args.part in ("all", "throughput") else []
        for i, (variant, p) in enumerate(plan, 1):
            r = throughput_run(svc, variant, p, records, scratch, log)
            runs.append(r)
            print(
                f"[bench] {i}/{len(plan)} {variant:<8} p={p} span {r['span_s']:6.1f}s "
                f"{r['rate']:7,.0f} rec/s, sustained {_fmt(r['sustained']):>7} rec/s "
                f"policies {r['policies']} load {r['load']:.1f}",
                flush=True,
            )
        fresh = []
        rates = [float(x) for x in args.rates.split(",") if x] if args.part in ("all", "freshness") else []
        for rate in rates:
            f = freshness_run(svc, rate, args, scratch, log)
            fresh.append(f)
            print(
                f"[bench] freshness at {rate:,.0f}/s (produced {f['sent_rate']:,.0f}/s): p50 {f['p50']:.3f}s "
                f"p99 {f['p99']:.3f}s, {f['missing']} of {f['probes']} probes not seen",
                flush=True,
            )
        text = render(runs, fresh, args, records, started)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(text, flush=True)
        return 0
    finally:
        svc_mod.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def run_order(variants: list[str], parallelisms: list[int], repeats: int) -> list[tuple[str, int]]:
    """(variant, parallelism) in run order. The variants' order flips each time, so a drift in the
    machine's speed does not always favour the same variant.

    >>> run_order(["sql", "learners"], [1, 2], 2)  # doctest: +NORMALIZE_WHITESPACE
    [('sql', 1), ('learners', 1), ('learners', 2), ('sql', 2),
     ('learners', 1), ('sql', 1), ('sql', 2), ('learners', 2)]
    """
    plan = []
    for rep in range(repeats):
        for i, p in enumerate(parallelisms):
            plan += [(v, p) for v in (variants if (rep + i) % 2 == 0 else variants[::-1])]
    return plan


def _variants(text: str) -> list[str]:
    chosen = [v for v in text.split(",") if v]
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {','.join(VARIANTS)}, found {text!r}"
        )
    return [v for v in VARIANTS if v in chosen]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_child"]:
        child(Path(argv[1]), Path(argv[2]))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_feedback", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--days", type=int, default=30, help="simulated days for the throughput runs")
    parser.add_argument("--repeats", type=int, default=2, help="throughput runs per variant and parallelism")
    parser.add_argument("--parallelisms", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    parser.add_argument("--rates", default="10000,1000,100", help="freshness rates, events/s")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds of load before the probes")
    parser.add_argument("--fresh-seconds", type=float, default=30.0, help="seconds of probes per rate")
    parser.add_argument("--probe-timeout", type=float, default=60.0, help="longest wait for a probe")
    parser.add_argument("--part", choices=("all", "throughput", "freshness"), default="all")
    parser.add_argument(
        "--variants",
        type=_variants,
        default=list(VARIANTS),
        help="throughput variants, comma-separated (default sql,learners,naive)",
    )
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="results file (Markdown)")
    args = parser.parse_args(argv)
    if args.days < 1 or args.repeats < 1:
        parser.error("--days and --repeats must be >= 1")
    try:
        return bench(args)
    except BenchError as e:
        print(f"bench_feedback: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
