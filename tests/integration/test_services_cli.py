"""The service script fails fast with one clear line: bad port, taken port, no Java."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _start(env_extra: dict[str, str], tmp_path: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "ADLOOP_WORK_DIR": str(tmp_path), **env_extra}
    (tmp_path / "jars").symlink_to(ROOT / ".work" / "jars")
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.services", "start", "--ttl", "30"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc, time.monotonic() - t0


def _one_line_error(proc: subprocess.CompletedProcess, elapsed: float, fragment: str) -> None:
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert fragment in lines[0]
    assert elapsed < 10


@pytest.mark.parametrize("value", ["abc", "99999", "0"])
def test_wrong_port_fails_with_one_line(tmp_path, value):
    proc, elapsed = _start({"ADLOOP_KAFKA_PORT": value}, tmp_path)
    _one_line_error(proc, elapsed, f"ADLOOP_KAFKA_PORT: expected a port number in 1..65535, found '{value}'")


def test_taken_port_fails_with_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc, elapsed = _start({"ADLOOP_REDIS_PORT": str(port)}, tmp_path)
    _one_line_error(proc, elapsed, f"Redis port {port} on 127.0.0.1 is already taken")


def test_missing_java_fails_with_one_line(tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    proc, elapsed = _start({"PATH": str(empty)}, tmp_path)
    _one_line_error(proc, elapsed, "java not found on PATH")


def test_missing_jars_fail_with_one_line(tmp_path):
    env = {**os.environ, "ADLOOP_WORK_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.services", "start"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    _one_line_error(proc, 0.0, "Kafka jars missing")
