"""Reward drift in the job: a campaign whose clicks stop gets a drift record and a counted drift,
and its creative learner keeps a tenth of what it had learned."""

from __future__ import annotations

import json
import time

from contract.events import CLICKS, CURRENT_VERSION, IMPRESSIONS
from jobs import feedback_job
from jobs.metrics import job_metrics
from scripts import kafka_tools
from scripts.services import free_port
from sim.noise import SimRecord
from sim.writers import KafkaWriter
from state.policy_store import RedisPolicyStore
from tests.integration.configs import job_config

T0 = 1_735_689_600_000
# Impressions 10 s apart, with 30% clicks, then none: the last hour's click windows stay open
# (the job is unbounded), the rest of the second phase is ~3 hours of trials without a click.
BEFORE, AFTER = 3_000, 1_500
STEP_MS = 10_000


def _records() -> list[SimRecord]:
    out = []
    for i in range(BEFORE + AFTER):
        ts = T0 + i * STEP_MS
        imp = {
            "schema_version": CURRENT_VERSION, "event_id": f"e{i}", "impression_id": f"i{i}", "ts": ts,
            "user_id": f"u{i % 97}", "campaign_id": "c1", "segment": "k0", "creative_id": "a",
            "bid_price": 0.2, "win_price": 0.1, "features": [0.0] * 8,
            "decisions": [{"agent": "creative", "action": "a", "propensity": 1.0, "policy_version": 0}],
        }  # fmt: skip
        out.append(SimRecord(IMPRESSIONS, b"c1", json.dumps(imp).encode(), ts, ts))
        if i < BEFORE and i % 10 < 3:
            click = {
                "schema_version": CURRENT_VERSION,
                "event_id": f"k{i}",
                "impression_id": f"i{i}",
                "ts": ts + 5,
            }
            out.append(SimRecord(CLICKS, b"c1", json.dumps(click).encode(), ts + 5, ts + 5))
    return out


def test_a_drop_in_reward_is_a_drift_record_a_counted_drift_and_a_discount(services, unique_prefix, tmp_path):
    bootstrap = services.kafka_bootstrap
    cfg = job_config(
        services,
        unique_prefix,
        tmp_path / "rewards",
        # Micro-batches by event time (6 trials a minute), whatever the pace the job reads at.
        batches={"clock": "event", "event_interval_ms": 60_000},
        rewards={"creative": {"click": 1.0, "credit": 0.0, "cost": 0.0}},
    )
    topics = cfg.kafka.input_topics() + cfg.kafka.output_topics()
    kafka_tools.create_topics(bootstrap, topics)
    with KafkaWriter(bootstrap, topic_prefix=unique_prefix) as writer:
        writer.write(_records())
    port = free_port()
    store = RedisPolicyStore(cfg.redis.url, key_prefix=cfg.redis.key_prefix)
    job = feedback_job.run(
        cfg,
        wait=False,
        flink_overrides={
            "restart-strategy.type": "none",
            "rest.bind-port": str(port),
            "metrics.fetcher.update-interval": "500",
        },
    )
    try:
        kafka_tools.wait_until_stable(bootstrap, cfg.kafka.topic("policy_updates"))
        kafka_tools.wait_until_stable(bootstrap, cfg.kafka.topic("drift"), quiet_s=12)  # checkpoints: 10 s
        drifts = [json.loads(v) for v in kafka_tools.read_all(bootstrap, cfg.kafka.topic("drift"))]
        metrics: dict = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            metrics = job_metrics(f"http://127.0.0.1:{port}", str(job.get_job_id()))
            if metrics.get("learner_drifts", 0) == len(drifts):
                break
            time.sleep(1)
    finally:
        job.cancel().result()

    try:
        # One drift, for the campaign's creative agent, soon after the clicks stopped: the
        # detector pools 200 trials and fires within ceil(5 / (Δ - 0.5)) + 1 pools, Δ = 0.3 /
        # sqrt(0.3 * 0.7 / 200) = 9.3 standard errors: 2 pools, 400 impressions (bench/drift.py).
        assert len(drifts) == 1, drifts
        drift = drifts[0]
        assert (drift["campaign_id"], drift["agent"], drift["drifts"]) == ("c1", "creative", 1)
        # A micro-batch's event time is its latest reward's: an unclicked impression's comes when its
        # click window closes.
        change = T0 + BEFORE * STEP_MS
        late = drift["event_time"] - change - cfg.attribution.click_window_ms
        assert -cfg.attribution.click_window_ms < late <= (400 + 6) * STEP_MS, late
        assert metrics.get("learner_drifts") == 1, metrics

        # The learner kept a tenth of its evidence from before the change: about 0.1 x 3,000
        # trials, plus the trials since.
        record = store.get("c1", "creative")
        assert record is not None
        pooled = record.params["pooled"]
        trials = dict(zip(pooled["arms"], (s[0] for s in pooled["stats"]), strict=True))["a"]
        assert trials < 0.2 * BEFORE + AFTER, trials
    finally:
        store.purge()
        store.close()
        kafka_tools.delete_topics(bootstrap, topics)
