"""``python -m quality.check``: one line per partition, exit 1 on any failure, 2 on usage errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from quality.check import main

from .partitions import FIRST_INITIAL, valid_rows, write_partition


def test_valid_table_exits_0(tmp_path, capsys):
    write_partition(tmp_path, valid_rows())
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("OK     dt=2024-05-01/hr=13 (18 rows")
    assert "1 of 1 partition(s) OK" in out


def test_failing_partition_exits_1_and_names_the_expectation(tmp_path, capsys):
    write_partition(tmp_path, valid_rows(), hr="13")
    bad = [dict(r, reward_ts=r["reward_ts"] + 3_600_000) for r in valid_rows()]
    bad[FIRST_INITIAL]["reward"] = 5_000.0
    write_partition(tmp_path, bad, hr="14")
    assert main([str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("OK")
    assert lines[1].startswith("FAILED dt=2024-05-01/hr=14 (18 rows): reward_within_bounds: 1 of 18 rows")
    assert "reward_within_bounds: {'decision_id': 'i1:creative'" in lines[2]


def test_reward_bounds_from_the_command_line(tmp_path, capsys):
    partition = write_partition(tmp_path, valid_rows())
    assert main([str(partition), "--reward-min", "-1", "--reward-max", "1"]) == 1
    assert "reward_within_bounds" in capsys.readouterr().out
    assert main([str(partition), "--reward-max", "1e6"]) == 0


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 2
    assert "no dt=yyyy-MM-dd/hr=HH partitions" in capsys.readouterr().err
    write_partition(tmp_path, valid_rows())
    assert main([str(tmp_path), "--reward-min", "5", "--reward-max", "1"]) == 2
    assert "reward bounds" in capsys.readouterr().err


def test_unreadable_partition_fails_the_run(tmp_path, capsys):
    (tmp_path / "dt=2024-05-01" / "hr=13").mkdir(parents=True)
    assert main([str(tmp_path)]) == 1
    assert "FAILED dt=2024-05-01/hr=13: partition" in capsys.readouterr().out


def test_module_entry_point_writes_docs(tmp_path):
    write_partition(tmp_path / "table", valid_rows())
    docs = tmp_path / "docs"
    run = subprocess.run(
        [sys.executable, "-m", "quality.check", str(tmp_path / "table"), "--docs", str(docs)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert run.returncode == 0, run.stderr
    assert "Data Docs: file://" in run.stdout
    assert (docs / "index.html").is_file()
    assert "Calculating Metrics" not in run.stderr
