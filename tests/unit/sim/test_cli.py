from __future__ import annotations

import json

import pytest

from sim.__main__ import main
from sim.noise import MALFORMED_KINDS


def test_cli_writes_files_and_truth_and_reports_counts(tmp_path, capsys):
    out, truth = tmp_path / "events", tmp_path / "truth.json"
    code = main(
        [
            "--days", "2", "--seed", "3", "--out", f"files:{out}", "--truth", str(truth),
            "--set", "requests_per_day=3000", "--set", "n_users=1000", "--set", "malformed_rate=0.05",
        ]
    )  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    assert "day 1/2:" in captured.err and "day 2/2:" in captured.err
    assert f"to files:{out}" in captured.out and "ad.impressions:" in captured.out
    assert sorted(p.name for p in out.iterdir()) == [
        "ad.auctions.jsonl",
        "ad.clicks.jsonl",
        "ad.conversions.jsonl",
        "ad.impressions.jsonl",
    ]
    data = json.loads(truth.read_text())
    assert data["config"]["seed"] == 3 and data["config"]["requests_per_day"] == 3000
    assert set(data) >= {"true_ctr", "best_creative", "noise", "conversions", "spend_per_day", "counts"}
    assert {m["kind"] for m in data["noise"]["malformed"]} == set(MALFORMED_KINDS)
    for campaign, by_segment in data["best_creative"].items():
        for segment, best in by_segment.items():
            row = data["true_ctr"][campaign][segment]
            assert row[best] == max(row.values())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--out", "s3:bucket"], "--out: expected files:DIR or kafka:HOST:PORT, found 's3:bucket'"),
        (["--out", "files:x", "--set", "dayz=3"], "SimConfig: unknown key 'dayz'"),
        (["--out", "files:x", "--set", "late_rate"], "--set: expected KEY=VALUE, found 'late_rate'"),
        (["--out", "files:x", "--days", "0"], "SimConfig.days: expected an int in [1, 3650], found 0"),
        (["--out", "kafka:127.0.0.1:9", "--kafka-timeout", "0.5"], "no Kafka broker answered"),
    ],
)
def test_cli_rejects_bad_arguments_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
