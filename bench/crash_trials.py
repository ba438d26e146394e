"""Crash trials: the feedback job (parallelism 2, learners on) under a steady input, its
TaskManagers killed with SIGKILL at seeded random times and its Kafka broker killed and restarted;
each trial's outputs compared with a fault-free run's.

    python -m bench.crash_trials [--trials 5] [--seed 7] [--days 2] [--input-s 60] [--broker-down-s 60]

starts its own Kafka broker (one it can kill) and a throwaway Redis, and writes
bench/results/crash_trials.md.

Every run has its own input topics (2 partitions each), written with the same simulated records
in the same order, so the same offsets; and its own output topics, consumer group, transactional
ids and Redis keys (``bench.replay_trials.run_config``).

- ``fault-free``: the whole input written first, then a bounded run on the local mini-cluster.
- ``tm-kill-N``: a standalone cluster of two TaskManagers with one slot each; the job unbounded,
  the input written at a steady rate over ``--input-s`` seconds. At a time drawn from the seed
  (15% to 85% of the writing), a TaskManager drawn from the seed is killed with SIGKILL and a new
  one started; the job restores its last checkpoint.
- ``broker-restart``: the same, but the broker is killed with SIGKILL, and started again on the
  same ports and data ``--broker-down-s`` seconds later. The writer pauses meanwhile (a producer
  cannot write to a dead broker; the trial is about the job).

Once a run's consumer group has committed the end of every input partition, the job is stopped
with a drain (event time advanced to the end). Compared with the fault-free run
(``bench.replay_trials.difference``): the reward rows read committed, every field (none missing,
none extra, no duplicates), the late and dead-letter rows, and the learners' sufficient statistics
within 1e-9. Subscribers' view: the run's Redis stream, which every serving node follows, lists
each policy key's versions strictly increasing (no regression), and every policy is in Redis at
the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import replay_trials as rt
from bench.flink_cluster import StandaloneCluster
from config import app as app_config
from scripts import kafka_tools
from scripts import services as svc
from sim.noise import SimRecord
from sim.simulator import Simulator
from state.policy_store import RedisPolicyStore

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "crash_trials.md"
KILL_WINDOW = (0.15, 0.85)  # when the fault comes, as a share of the input's writing time


@dataclass
class CrashTrial:
    run: str
    fault: str
    outcome: rt.RunOutcome
    wall_s: float
    fault_at_s: float | None = None  # seconds into the input's writing
    recovery_s: float | None = None  # from the fault's end to the restored job's first checkpoint
    failovers: int = 0
    policy_keys: int = 0
    version_regressions: int = 0
    stream_entries: int = 0


class SteadyWriter:
    """Writes records to a run's input topics at a steady rate in a background thread; can pause."""

    def __init__(self, cfg: app_config.AppConfig, records: list[SimRecord], seconds: float) -> None:
        self.cfg, self.records = cfg, records
        self.chunk = max(1, len(records) // max(1, int(seconds * 10)))  # ten chunks a second
        self.interval_s = seconds / max(1, -(-len(records) // self.chunk))
        self.running = threading.Event()
        self.running.set()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._writing = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="steady-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            for start in range(0, len(self.records), self.chunk):
                due = time.monotonic() + self.interval_s
                while True:
                    self.running.wait()
                    with self._writing:
                        if self.running.is_set():
                            rt.write_input(self.cfg, self.records[start : start + self.chunk])
                            break
                time.sleep(max(0.0, due - time.monotonic()))
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.error = exc
        finally:
            self.done.set()

    def pause(self) -> None:
        """Returns once no chunk is being written; none starts until :meth:`resume`."""
        self.running.clear()
        with self._writing:
            pass

    def resume(self) -> None:
        self.running.set()

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)
        if self.error is not None:
            raise RuntimeError(f"the input writer failed: {self.error}") from self.error
        if self._thread.is_alive():
            raise TimeoutError(f"the input writer did not finish in {timeout_s:g}s")


def trial_config(bootstrap: str, redis_url: str, prefix: str, run: str, work: Path) -> app_config.AppConfig:
    """``replay_trials.run_config`` at parallelism 2, with the run's own input topics too."""
    cfg = rt.run_config(bootstrap, redis_url, prefix, run, work, 2)
    defaults = app_config.KafkaConfig()
    inputs = {f"{n}_topic": f"{prefix}{run}." + getattr(defaults, f"{n}_topic") for n in rt.INPUTS}
    return cfg.replace(kafka=inputs)


def versions_in_stream(cfg: app_config.AppConfig) -> tuple[int, int, int]:
    """(policy keys, versions that did not go up in stream order, stream entries) of a run's Redis
    stream: what a serving node following it saw."""
    last: dict[tuple[str, str], int] = {}
    regressions = entries = 0
    with RedisPolicyStore(cfg.redis.url, key_prefix=cfg.redis.key_prefix) as store:
        after = "0-0"
        while True:
            batch = store.read_updates(after, count=5_000)
            if not batch.read or batch.last_id is None:
                break
            for _, note in batch.entries:
                entries += 1
                regressions += note.version <= last.get(note.key, 0)
                last[note.key] = max(note.version, last.get(note.key, 0))
            after = batch.last_id
        stored = {(r.campaign_id, r.agent): r.version for r in store.load_all()}
    # Every key's newest version in the stream is the one in Redis at the end.
    regressions += sum(1 for key, version in last.items() if stored.get(key) != version)
    return len(last), regressions, entries


def _without_prefix(out: rt.RunOutcome, prefix: str) -> rt.RunOutcome:
    """The outcome with the run's topic prefix taken off the source topics of late and dead rows."""
    return dataclasses.replace(
        out,
        late={(t.removeprefix(prefix), *rest) for t, *rest in out.late},
        dlq={(t.removeprefix(prefix), *rest) for t, *rest in out.dlq},
    )


def finish(trial: CrashTrial, cfg: app_config.AppConfig, prefix: str) -> CrashTrial:
    trial.outcome = _without_prefix(rt.outcome(cfg), f"{prefix}{trial.run}.")
    trial.policy_keys, trial.version_regressions, trial.stream_entries = versions_in_stream(cfg)
    return trial


def fault_free(cfg: app_config.AppConfig, records: list[SimRecord]) -> CrashTrial:
    rt.write_input(cfg, records)
    return CrashTrial(
        "fault-free", "none (bounded run on the mini-cluster)", rt.RunOutcome(), rt.run_bounded(cfg)
    )


@contextmanager
def unbounded_on_cluster(cfg: app_config.AppConfig, work: Path) -> Iterator[tuple[StandaloneCluster, str]]:
    """The job submitted unbounded to a standalone cluster of two TaskManagers (one slot each);
    yields (cluster, job id) once every task runs; drains the job when the block ends."""
    import yaml

    settings = {
        "execution.checkpointing.interval": rt.CHECKPOINT_INTERVAL,
        # A killed TaskManager is noticed within seconds, not the default 50 s.
        "heartbeat.interval": 1000,
        "heartbeat.timeout": 5000,
    }
    work.mkdir(parents=True, exist_ok=True)
    config_file = work / "adloop.yaml"
    config_file.write_text(yaml.safe_dump(app_config.as_sections(cfg.replace(kafka={"bounded": False}))))
    with StandaloneCluster(work / "cluster", taskmanagers=2, slots=1, settings=settings) as cluster:
        log = work / "flink-run.log"
        client = cluster.submit(config_file, log=log)
        try:

            def submitted() -> str | None:
                if client.poll() not in (None, 0):
                    raise RuntimeError(f"flink run failed: {log.read_text()[-3000:]}")
                return cluster.job_id(cfg.job.name)

            job_id = rt.wait_for(submitted, rt.WAIT_S, "the job to be submitted")
            rt.wait_for(lambda: cluster.all_running(job_id), rt.WAIT_S, "every task to run")
            yield cluster, job_id
            rt.wait_for(
                lambda: rt.read_to(cfg, range(rt.PARTITIONS)), rt.WAIT_S, "the job to read everything"
            )
            cluster.stop_with_drain(job_id, work / "savepoints")
            rt.wait_for(lambda: cluster.job_state(job_id) == "FINISHED", rt.WAIT_S, "the job to finish")
        finally:
            if client.poll() is None:
                client.kill()


def _recovered(cluster: StandaloneCluster, job_id: str, checkpoints: int, failovers: int) -> bool:
    """Whether the job failed over since, runs every task again and completed a checkpoint."""
    return (
        cluster.failovers(job_id) > failovers
        and cluster.completed_checkpoints(job_id) > checkpoints
        and cluster.all_running(job_id)
    )


def faulted(
    cfg: app_config.AppConfig,
    records: list[SimRecord],
    work: Path,
    run: str,
    rng: random.Random,
    input_s: float,
    broker: svc.KafkaBroker | None = None,
    broker_down_s: float = 60.0,
) -> CrashTrial:
    """One faulted run: a TaskManager killed, or (``broker`` given) the broker killed and restarted."""
    fault_at = rng.uniform(*KILL_WINDOW) * input_s
    started = time.monotonic()
    with unbounded_on_cluster(cfg, work / run) as (cluster, job_id):
        writer = SteadyWriter(cfg, records, input_s)
        writer.start()
        writing = time.monotonic()
        time.sleep(max(0.0, writing + fault_at - time.monotonic()))
        checkpoints, failovers = cluster.completed_checkpoints(job_id), cluster.failovers(job_id)
        if broker is None:
            victim = rng.choice(cluster.taskmanager_pids())
            cluster.kill_taskmanager(victim)
            fault = f"SIGKILL of TaskManager pid {victim}, {fault_at:.1f} s into the input; a new one started"
            cluster.start_taskmanager()
        else:
            writer.pause()
            broker.kill()
            time.sleep(broker_down_s)
            broker.start()
            writer.resume()
            fault = (
                f"SIGKILL of the Kafka broker {fault_at:.1f} s into the input; "
                f"restarted {broker_down_s:g} s later"
            )
        fault_end = time.monotonic()
        if broker is not None:
            # Checkpoints may complete while the broker is down (the sources only wait); the job
            # has recovered once one completes after the restart, failed over or not.
            checkpoints, failovers = cluster.completed_checkpoints(job_id), -1
        rt.wait_for(
            lambda: _recovered(cluster, job_id, checkpoints, failovers),
            rt.WAIT_S,
            "the restored job's first checkpoint",
            poll_s=0.2,
        )
        recovery = time.monotonic() - fault_end
        writer.join(rt.WAIT_S)
        failovers = cluster.failovers(job_id)
    return CrashTrial(
        run,
        fault,
        rt.RunOutcome(),
        time.monotonic() - started,
        fault_at_s=fault_at,
        recovery_s=recovery,
        failovers=failovers,
    )


def run_names(trials: int) -> list[str]:
    """The runs, in order: the fault-free one, ``trials`` TaskManager kills, the broker restart."""
    return ["fault-free", *(f"tm-kill-{i + 1}" for i in range(trials)), "broker-restart"]


def run_trials(
    broker: svc.KafkaBroker,
    redis_url: str,
    prefix: str,
    work: Path,
    *,
    trials: int = 5,
    seed: int = 7,
    days: int = 2,
    input_s: float = 60.0,
    broker_down_s: float = 60.0,
    progress=print,
) -> list[CrashTrial]:
    """The fault-free run, ``trials`` TaskManager kills and one broker restart, in that order;
    their topics are created here and left for the caller to delete (``trial_topics``)."""
    records = [r for chunk in Simulator(rt.sim_config(days, seed)).run() for r in chunk.records]
    runs = run_names(trials)
    cfgs = {run: trial_config(broker.bootstrap, redis_url, prefix, run, work) for run in runs}
    kafka_tools.create_topics(broker.bootstrap, rt.trial_topics(cfgs.values()), partitions=rt.PARTITIONS)
    rng = random.Random(seed)
    done = []
    for run in runs:
        progress(f"[crash] {run}: {len(records):,} records")
        if run == "fault-free":
            trial = fault_free(cfgs[run], records)
        else:
            restart = broker if run == "broker-restart" else None
            trial = faulted(cfgs[run], records, work, run, rng, input_s, restart, broker_down_s)
        done.append(finish(trial, cfgs[run], prefix))
        progress(f"[crash] {run}: {trial.fault}; {trial.wall_s:.0f} s")
    return done


def trial_topics(broker: svc.KafkaBroker, redis_url: str, prefix: str, work: Path, trials: int) -> list[str]:
    return rt.trial_topics(
        trial_config(broker.bootstrap, redis_url, prefix, run, work) for run in run_names(trials)
    )


def table(trials: list[CrashTrial]) -> list[str]:
    ref = trials[0].outcome
    lines = [
        "| trial | fault | recovery s | failovers | reward rows compared | duplicates | missing | extra "
        "| changed | late / dead rows differing | learner statistics differing (> 1e-9) "
        "| policy keys | version regressions | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in trials:
        d = rt.difference(t.outcome, ref)
        recovery = "–" if t.recovery_s is None else f"{t.recovery_s:.1f}"
        lines.append(
            f"| {t.run} | {t.fault} | {recovery} | {t.failovers} | {len(ref.rewards):,} "
            f"| {d.reward_duplicates} | {d.rewards_missing} | {d.rewards_extra} | {d.rewards_changed} "
            f"| {d.late_differing} / {d.dlq_differing} | {d.stats_differing} of {len(ref.stats)} "
            f"| {t.policy_keys} | {t.version_regressions} | {t.wall_s:.0f} |"
        )
    return lines


def failures(trials: list[CrashTrial]) -> list[str]:
    """What each trial got wrong against the fault-free run; empty when every trial held."""
    ref = trials[0].outcome
    found = []
    for t in trials:
        d = rt.difference(t.outcome, ref)
        if t is not trials[0] and not d.zero:
            found.append(f"{t.run}: {d}")
        if t.version_regressions or not t.policy_keys:
            found.append(f"{t.run}: {t.version_regressions} version regressions, {t.policy_keys} policy keys")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crash_trials", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5, help="TaskManager kills (default 5)")
    parser.add_argument("--seed", type=int, default=7, help="simulator and fault seed (default 7)")
    parser.add_argument("--days", type=int, default=2, help="simulated days of input (default 2)")
    parser.add_argument("--input-s", type=float, default=60.0, help="seconds the input is written over")
    parser.add_argument("--broker-down-s", type=float, default=60.0, help="seconds the broker stays down")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    import os
    import subprocess

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with svc.throwaway("adloop-crash-") as (work, running):
        broker = svc.KafkaBroker(work / "broker", owner_pid=os.getpid())
        try:
            (work / "broker").mkdir()
            broker.format()
            broker.start(watch_ttl_s=3 * 3600)
            trials = run_trials(
                broker,
                running.redis_url,
                "crash.",
                work,
                trials=args.trials,
                seed=args.seed,
                days=args.days,
                input_s=args.input_s,
                broker_down_s=args.broker_down_s,
            )
        finally:
            broker.stop()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    argv_text = " ".join(argv if argv is not None else __import__("sys").argv[1:])
    text = [
        "# Crash trials",
        "",
        f"`python -m bench.crash_trials {argv_text}`, {started}, commit {commit.stdout.strip()}, on a "
        f"2-core machine. Input: the simulator ({args.days} days, seed {args.seed}) with 1% of events 6 h "
        f"late, 3% duplicates, 1% malformed, {len(trials[0].outcome.rewards):,} reward rows, on 2 "
        f"partitions per topic, written over {args.input_s:g} s. The job at parallelism 2 with learners "
        "on; the module's docstring says what each trial does and what is compared.",
        "",
        *table(trials),
        "",
    ]
    wrong = failures(trials)
    text += [f"- {w}" for w in wrong] + ([""] if wrong else [])
    args.out.write_text("\n".join(text))
    print("\n".join(text))
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
