"""Flink's reward rows equal an independent pure-Python attribution of the same Kafka stream.

The simulator writes two noisy days (duplicates, out-of-order, late and malformed records) to
real Kafka; the feedback job runs bounded on the mini-cluster; its reward topic must match
``tests/reference/attribution.py`` row for row, credits within 1e-9 relative.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs import feedback_job
from quality.check import check_table
from scripts import kafka_tools
from scripts.pyflink_env import script_environ
from sim.config import SimConfig
from sim.simulator import Simulator
from sim.writers import KafkaWriter
from sql import client_init
from tests.integration.configs import job_config
from tests.reference.attribution import compare_rows, reference_rewards, row_key

ROOT = Path(__file__).resolve().parents[2]


# (model, lookback). A run with a 3 h lookback, where touches fall out of it within the two days
# and the attribution state drops them, passes too (ADLOOP_REFERENCE_SHORT_LOOKBACK=1); it is off
# by default: a third job in the suite's process pushed the later tests over the mini-cluster's
# limits in a clean-clone run.
RUNS = {"time_decay": ("time_decay", 30 * 86_400_000), "last_touch": ("last_touch", 30 * 86_400_000)}
if os.environ.get("ADLOOP_REFERENCE_SHORT_LOOKBACK") == "1":
    RUNS["time_decay_3h_lookback"] = ("time_decay", 3 * 3_600_000)


@pytest.fixture(scope="module", params=list(RUNS))
def run(request, services, tmp_path_factory):
    model, lookback_ms = RUNS[request.param]
    prefix = f"t{abs(hash((request.param, id(request)))) % 10**8:08d}.attribution_{request.param}."
    # Few users, so users come back and conversions have several touches to share credit.
    sim_cfg = SimConfig(
        days=2,
        n_users=400,
        requests_per_day=4_000,
        malformed_rate=0.01,
        duplicate_rate=0.03,
        late_rate=0.01,
        # Hours behind, not minutes: in a replay at full speed the periodic watermark trails the
        # records read by a fraction of a second, which can be an hour of simulated time.
        late_by_ms=6 * 3_600_000,
        view_conversion_ratio=0.2,
    )
    cfg = job_config(
        services,
        prefix,
        tmp_path_factory.mktemp(f"rewards-{model}"),
        kafka={"bounded": True},
        ingest={"out_of_orderness_ms": 30_000},
        attribution={"model": model, "lookback_ms": lookback_ms},
        job={"learners": False},
    )
    topics = cfg.kafka.input_topics() + cfg.kafka.output_topics()
    kafka_tools.create_topics(services.kafka_bootstrap, topics)
    records = []
    with KafkaWriter(services.kafka_bootstrap, topic_prefix=prefix) as writer:
        for chunk in Simulator(sim_cfg).run():
            writer.write(chunk.records)
            records.extend(chunk.records)
    feedback_job.run(cfg)
    out = {
        name: [json.loads(v) for v in kafka_tools.read_all(services.kafka_bootstrap, cfg.kafka.topic(name))]
        for name in ("rewards", "late", "dlq")
    }
    yield cfg, records, out
    kafka_tools.delete_topics(services.kafka_bootstrap, topics)


def test_reward_rows_match_the_reference(run):
    cfg, records, out = run
    late_ids = [row["event_id"] for row in out["late"]]
    expected = reference_rewards(records, late_ids, cfg.attribution, cfg.rewards)
    kinds = Counter(row["kind"] for row in expected)
    assert kinds["initial"] > 1000 and kinds["delayed"] > 20, kinds  # the run exercises both kinds
    problems = compare_rows(expected, out["rewards"], rel=1e-9)
    assert not problems, "\n".join(problems[:20])


def test_credits_of_a_conversion_sum_to_its_value(run):
    _, _, out = run
    sums: Counter = Counter()
    values = {}
    for row in out["rewards"]:
        if row["kind"] == "delayed" and row["agent"] == "creative":
            sums[row["conversion_id"]] += row["credit"]
            values[row["conversion_id"]] = row["conversion_value"]
    assert values
    for conversion_id, total in sums.items():
        assert total == pytest.approx(values[conversion_id], rel=1e-9)


def test_late_rows_are_the_simulators_late_events(run):
    _, records, out = run
    injected_late = {json.loads(r.value)["event_id"] for r in records if r.late and not r.malformed}
    late_ids = {row["event_id"] for row in out["late"]}
    assert late_ids <= injected_late  # nothing on time is called late
    # In a replay at full speed the periodic watermark trails the records it has read, so only
    # part of the injected late events are behind it when they arrive; those that are not are
    # attributed as usual (and the reference above agrees row for row either way).
    assert late_ids


def test_parquet_table_holds_each_reward_row_exactly_once(run):
    cfg, _, out = run
    table = pq.read_table(cfg.tables.rewards_path, partitioning="hive")
    rows = table.to_pylist()
    assert Counter(row_key(r) for r in rows) == Counter(row_key(r) for r in out["rewards"])
    for row in rows:
        when = datetime.fromtimestamp(row["reward_ts"] / 1000, tz=UTC)
        assert (str(row["dt"]), f"{int(row['hr']):02d}") == (when.strftime("%Y-%m-%d"), when.strftime("%H"))


def test_reward_partitions_pass_the_data_quality_suite(run, tmp_path):
    cfg, _, _ = run
    reports = check_table(cfg.tables.rewards_path, docs_dir=tmp_path / "docs")
    assert reports and all(r.success for r in reports), [r.line() for r in reports if not r.success]
    assert (tmp_path / "docs" / "index.html").exists()


def _tableau_tables(output: str) -> list[list[dict[str, str]]]:
    """The result tables the SQL client printed in tableau mode, in order, as lists of dicts."""
    tables, header, rows, inside = [], None, [], False
    for line in output.splitlines():
        if line.startswith("+-"):
            if header is not None and inside:  # closing border
                tables.append(rows)
                header, rows, inside = None, [], False
            elif header is not None:
                inside = True
        elif line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if header is None:
                header = cells
            else:
                rows.append(dict(zip(header, cells, strict=True)))
    return tables


def test_example_queries_through_the_sql_client(run, tmp_path):
    cfg, _, _ = run
    init = tmp_path / "init.sql"
    init.write_text(client_init.render(cfg) + "SET 'sql-client.verbose' = 'true';\n")  # full traces
    queries = tmp_path / "queries.sql"
    names = [
        "ctr_by_creative_hour",
        "cpa_by_campaign",
        "reward_by_agent_policy_version",
        "ips_candidate_policy",
    ]
    queries.write_text("\n".join((ROOT / "sql" / "queries" / f"{n}.sql").read_text() for n in names))
    proc = subprocess.run(
        [str(ROOT / "scripts" / "sql_client.sh"), "-i", str(init), "-f", str(queries)],
        capture_output=True,
        text=True,
        timeout=600,
        env=script_environ(),
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    tables = _tableau_tables(proc.stdout)
    assert len(tables) == len(names), proc.stdout[-6000:]
    ctr, cpa, by_agent, ips = tables

    df = pq.read_table(cfg.tables.rewards_path, partitioning="hive").to_pandas()
    creative = df[df.agent == "creative"]
    initial = creative[creative.kind == "initial"]
    assert sum(int(r["impressions"]) for r in ctr) == len(initial)
    assert sum(float(r["clicks"]) for r in ctr) == pytest.approx(initial.click.sum())

    for row in cpa:
        rows = creative[creative.campaign_id == row["campaign_id"]]
        spend = rows[rows.kind == "initial"].cost.sum()
        conversions = rows.conversion_id.dropna().nunique()
        assert float(row["spend"]) == pytest.approx(spend, rel=1e-9)
        assert int(row["conversions"]) == conversions
        if conversions:
            assert float(row["cpa"]) == pytest.approx(spend / conversions, rel=1e-9)

    for row in by_agent:
        rows = df[
            (df.campaign_id == row["campaign_id"])
            & (df.agent == row["agent"])
            & (df.policy_version == int(row["policy_version"]))
        ]
        assert int(row["decisions"]) == (rows.kind == "initial").sum()
        assert float(row["reward"]) == pytest.approx(rows.reward.sum(), rel=1e-9, abs=1e-9)

    best = initial.groupby(["campaign_id", "action"]).click.mean().reset_index()
    best = best.sort_values(["campaign_id", "click", "action"], ascending=[True, False, True])
    best = best.groupby("campaign_id").first().action
    assert len(ips) == best.size
    for row in ips:
        rows = creative[creative.campaign_id == row["campaign_id"]]
        assert row["candidate_creative"] == best[row["campaign_id"]]
        chosen = rows[rows.action == row["candidate_creative"]]
        expected = (chosen.reward / chosen.propensity).sum() / (rows.kind == "initial").sum()
        assert float(row["ips_reward_per_decision"]) == pytest.approx(expected, rel=1e-9)
