"""A throwaway Flink standalone cluster on loopback (PyFlink's bundled scripts): one JobManager,
``taskmanagers`` TaskManagers, jobs submitted with ``flink run -py``, TaskManagers killed with
SIGKILL and started again. Used by the cluster test and the fault trials."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pyflink
import yaml

from scripts.pyflink_env import script_environ
from scripts.services import free_port

ROOT = Path(__file__).resolve().parents[1]
FLINK_HOME = Path(pyflink.__file__).parent


def _set(conf: dict[str, Any], dotted: str, value: Any) -> None:
    """``conf[a][b][c] = value`` for ``a.b.c``, creating the levels that are missing."""
    *path, last = dotted.split(".")
    for part in path:
        conf = conf.setdefault(part, {})
    conf[last] = value


class StandaloneCluster:
    """Start with ``start()`` (or ``with``); ``stop()`` stops every process it started."""

    def __init__(
        self, work: Path, taskmanagers: int = 1, slots: int = 2, settings: dict[str, Any] | None = None
    ) -> None:
        self.work = work
        self.taskmanagers = taskmanagers
        self.rest_port = free_port()
        conf = yaml.safe_load((ROOT / "flink-conf" / "config.yaml").read_text())
        for key, value in {
            "rest.port": self.rest_port,
            "jobmanager.rpc.port": free_port(),
            "taskmanager.numberOfTaskSlots": slots,
            "execution.checkpointing.dir": (work / "checkpoints").as_uri(),
            "execution.checkpointing.savepoint-dir": (work / "savepoints").as_uri(),
            "state.changelog.dstl.dfs.base-path": (work / "changelog").as_uri(),
            **(settings or {}),
        }.items():
            _set(conf, key, value)
        self.conf_dir = work / "conf"
        for d in (self.conf_dir, work / "log", work / "pid"):
            d.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "config.yaml").write_text(yaml.safe_dump(conf))
        for name in ("log4j.properties", "log4j-cli.properties", "log4j-console.properties"):
            shutil.copy(FLINK_HOME / "conf" / name, self.conf_dir / name)
        (self.conf_dir / "workers").write_text("localhost\n")
        (self.conf_dir / "masters").write_text(f"localhost:{self.rest_port}\n")
        # The cluster's lib/: PyFlink's, plus flink-python from its opt/ (the Python operators of
        # a job run in the cluster's classpath, as on any cluster that runs PyFlink jobs).
        lib = work / "lib"
        lib.mkdir(exist_ok=True)
        for jar in [*(FLINK_HOME / "lib").glob("*.jar"), *(FLINK_HOME / "opt").glob("flink-python-*.jar")]:
            (lib / jar.name).symlink_to(jar)
        self.env = script_environ(
            FLINK_CONF_DIR=str(self.conf_dir),
            FLINK_LIB_DIR=str(lib),
            FLINK_LOG_DIR=str(work / "log"),
            FLINK_PID_DIR=str(work / "pid"),
        )

    def __enter__(self) -> StandaloneCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _script(self, name: str, *args: str) -> None:
        subprocess.run([str(FLINK_HOME / "bin" / name), *args], env=self.env, check=True, timeout=60)

    def start(self) -> None:
        self._script("jobmanager.sh", "start")
        for _ in range(self.taskmanagers):
            self.start_taskmanager()
        deadline = time.monotonic() + 120
        while self.registered_taskmanagers() < self.taskmanagers:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Flink cluster at :{self.rest_port}: TaskManagers did not register")
            time.sleep(1)

    def stop(self) -> None:
        for name in ("taskmanager.sh", "jobmanager.sh"):
            subprocess.run([str(FLINK_HOME / "bin" / name), "stop-all"], env=self.env, timeout=60)

    def start_taskmanager(self) -> None:
        self._script("taskmanager.sh", "start")

    def taskmanager_pids(self) -> list[int]:
        """Process ids of the TaskManagers this cluster started that are still alive."""
        alive = []
        for pid_file in (self.work / "pid").glob("*taskexecutor*.pid"):
            for line in pid_file.read_text().split():
                try:
                    os.kill(int(line), 0)
                    alive.append(int(line))
                except (ProcessLookupError, ValueError):
                    pass
        return sorted(alive)

    def kill_taskmanager(self, pid: int) -> None:
        if pid not in self.taskmanager_pids():
            raise ValueError(f"{pid} is not a TaskManager of this cluster")
        os.kill(pid, signal.SIGKILL)

    def rest(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://localhost:{self.rest_port}{path}", timeout=10) as response:
            return json.loads(response.read())

    def registered_taskmanagers(self) -> int:
        try:
            return len(self.rest("/taskmanagers")["taskmanagers"])
        except OSError:
            return 0

    def job_id(self, name: str) -> str | None:
        """The id of the newest job called ``name``, if any."""
        try:
            jobs = [j for j in self.rest("/jobs/overview")["jobs"] if j["name"] == name]
        except OSError:
            return None
        return max(jobs, key=lambda j: j["start-time"])["jid"] if jobs else None

    def job_state(self, job_id: str) -> str:
        return self.rest(f"/jobs/{job_id}")["state"]

    def all_running(self, job_id: str) -> bool:
        """Whether every task of ``job_id`` is running (the job is processing)."""
        try:
            vertices = self.rest(f"/jobs/{job_id}")["vertices"]
        except OSError:
            return False
        return bool(vertices) and all(v["status"] == "RUNNING" for v in vertices)

    def sources_running(self, job_id: str) -> bool:
        """Whether every source task of ``job_id`` is still running (has input left to read)."""
        vertices = self.rest(f"/jobs/{job_id}")["vertices"]
        sources = [v for v in vertices if v["name"].startswith("Source:")]
        return bool(sources) and all(v["status"] == "RUNNING" for v in sources)

    def completed_checkpoints(self, job_id: str) -> int:
        """Checkpoints ``job_id`` has completed (0 while it is still being scheduled, when the
        REST API answers 500 for them)."""
        try:
            return self.rest(f"/jobs/{job_id}/checkpoints")["counts"]["completed"]
        except OSError:  # urllib's HTTPError included
            return 0

    def stop_with_drain(self, job_id: str, savepoints: Path, timeout_s: float = 600.0) -> str:
        """Stop ``job_id`` with a savepoint, advancing event time to the end first (every event-time
        timer fires); returns the savepoint's location."""
        request = urllib.request.Request(
            f"http://localhost:{self.rest_port}/jobs/{job_id}/stop",
            data=json.dumps({"drain": True, "targetDirectory": savepoints.as_uri()}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            trigger = json.loads(response.read())["request-id"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.rest(f"/jobs/{job_id}/savepoints/{trigger}")
            if status["status"]["id"] == "COMPLETED":
                operation = status["operation"]
                if "failure-cause" in operation:
                    raise RuntimeError(f"stopping {job_id} failed: {operation['failure-cause']}")
                return operation["location"]
            time.sleep(0.5)
        raise TimeoutError(f"stopping {job_id} with a drain took over {timeout_s:g}s")

    def failovers(self, job_id: str) -> int:
        """How many times ``job_id`` failed and restarted (its exception history)."""
        return len(self.rest(f"/jobs/{job_id}/exceptions")["exceptionHistory"]["entries"])

    def submit(self, config_file: Path, *args: str, log: Path) -> subprocess.Popen:
        """``flink run -py jobs/feedback_job.py --config <config_file> <args>``, attached (it ends
        when the job does), its output in ``log``."""
        out = log.open("w")
        return subprocess.Popen(
            [
                str(FLINK_HOME / "bin" / "flink"),
                "run",
                "-m",
                f"localhost:{self.rest_port}",
                "-py",
                str(ROOT / "jobs" / "feedback_job.py"),
                "-pyexec",
                sys.executable,
                "-pyclientexec",
                sys.executable,
                "--config",
                str(config_file),
                *args,
            ],
            env=self.env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def submitted_job_id(log_text: str) -> str | None:
    """The JobID ``flink run`` printed, if it has."""
    match = re.search(r"JobID ([0-9a-f]{32})", log_text)
    return match.group(1) if match else None
