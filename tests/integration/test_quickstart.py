"""The README's quickstart, its exact lines run by bash from the project root: services on the
config's ports that stay up, the job unbounded, two simulated days, the SQL client's query over
the reward table, which must return rows."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from scripts.pyflink_env import script_environ

ROOT = Path(__file__).resolve().parents[2]


def quickstart_lines() -> list[str]:
    """The shell block after ``<!-- quickstart -->`` in the README."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- quickstart -->\s*```bash\n(.*?)```", text, re.DOTALL)
    assert match, "README.md has no quickstart block after <!-- quickstart -->"
    return [line for line in match.group(1).splitlines() if line.strip()]


def _free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_the_readme_quickstart_returns_rows(tmp_path):
    lines = quickstart_lines()
    assert len(lines) <= 10, lines
    for port in (9092, 6379):
        if not _free(port):
            pytest.fail(f"the quickstart's port {port} is taken on this machine; it needs it free")
    env = {
        **script_environ(),
        # Services, checkpoints and the reward table of this run under tmp_path; the commands as written.
        "ADLOOP_WORK_DIR": str(tmp_path / "work"),
        "ADLOOP_TABLES_REWARDS_PATH": str(tmp_path / "tables" / "rewards"),
    }
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "jars").symlink_to(ROOT / ".work" / "jars")  # built by scripts/setup.sh
    script = tmp_path / "quickstart.sh"
    script.write_text("set -euo pipefail\n" + "\n".join(lines) + "\n")
    proc = subprocess.Popen(
        ["bash", str(script)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=1500)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the quickstart did not finish in 25 min: {out[-3000:]} {err[-3000:]}")
    finally:
        # Whatever it left behind (a failed line skips its last one): the job, then the services.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        subprocess.run(
            [str(ROOT / ".venv/bin/python"), "-m", "scripts.services", "stop"], cwd=ROOT, env=env, timeout=120
        )
    assert proc.returncode == 0, out[-4000:] + err[-4000:]
    rows = [line for line in out.splitlines() if line.startswith("|") and "impressions" not in line]
    assert rows, out[-4000:]
    # ctr_by_creative_hour: campaign_id | creative_id | impression_hour | impressions | clicks | ctr
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in rows]
    impressions = [int(row[3]) for row in cells if len(row) > 3 and row[3].isdigit()]
    assert impressions and sum(impressions) > 1_000, rows[:5]
