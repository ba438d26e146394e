"""scripts/sql_client.sh -f fails when a statement fails; Flink's client alone would exit 0."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from scripts.pyflink_env import script_environ

ROOT = Path(__file__).resolve().parents[2]


def _run_file(tmp_path: Path, sql: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "statements.sql"
    script.write_text(sql)
    return subprocess.run(
        [str(ROOT / "scripts" / "sql_client.sh"), "-f", str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env=script_environ(),
    )


def test_a_failing_statement_fails_the_run_and_the_rest_is_skipped(tmp_path):
    proc = _run_file(tmp_path, "SELECT * FROM no_such_table;\nSELECT 'after' AS marker;\n")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "no_such_table" in proc.stdout and "a statement failed" in proc.stderr
    assert "after" not in proc.stdout.split("no_such_table")[-1]


def test_a_clean_file_exits_0_with_its_results(tmp_path):
    tableau = "SET 'sql-client.execution.result-mode' = 'tableau';\n"
    proc = _run_file(tmp_path, tableau + "SELECT 'after' AS marker;\n")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"\|\s+after\s+\|$", proc.stdout, re.MULTILINE), proc.stdout[-3000:]
