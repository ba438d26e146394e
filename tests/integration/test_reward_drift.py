"""Reward drift in the job: a campaign whose clicks stop gets a drift record, and its creative
learner keeps a tenth of what it had learned (the metric ``learner_drifts``, counted with the
record: test_job_metrics.py)."""

from __future__ import annotations

import json

from contract.events import CLICKS, CURRENT_VERSION, IMPRESSIONS
from jobs import feedback_job
from scripts import kafka_tools
from sim.noise import SimRecord
from sim.writers import KafkaWriter
from state.policy_store import RedisPolicyStore
from tests.integration.configs import job_config

T0 = 1_735_689_600_000
# Impressions 10 s apart: 30% clicked for ~8 hours, then none for ~4 hours.
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


def test_a_drop_in_reward_is_a_drift_record_and_a_discount(services, unique_prefix, tmp_path):
    bootstrap = services.kafka_bootstrap
    cfg = job_config(
        services,
        unique_prefix,
        tmp_path / "rewards",
        kafka={"bounded": True},
        batches={"event_interval_ms": 60_000},  # micro-batches of an event-time minute: 6 trials
        rewards={"creative": {"click": 1.0, "credit": 0.0, "cost": 0.0}},
    )
    topics = cfg.kafka.input_topics() + cfg.kafka.output_topics()
    kafka_tools.create_topics(bootstrap, topics)
    with KafkaWriter(bootstrap, topic_prefix=unique_prefix) as writer:
        writer.write(_records())
    store = RedisPolicyStore(cfg.redis.url, key_prefix=cfg.redis.key_prefix)
    feedback_job.run(cfg, wait=True, flink_overrides={"restart-strategy.type": "none"})
    drifts = [json.loads(v) for v in kafka_tools.read_all(bootstrap, cfg.kafka.topic("drift"))]
    try:
        # One drift, for the campaign's creative agent, soon after the clicks stopped: the
        # detector pools 200 trials and fires within ceil(8 / (Δ - 0.5)) + 1 pools, Δ = 0.3 /
        # sqrt(0.3 * 0.7 / 200) = 9.3 standard errors: 2 pools, 400 impressions (bench/drift.py).
        assert len(drifts) == 1, drifts
        drift = drifts[0]
        assert (drift["campaign_id"], drift["agent"], drift["drifts"]) == ("c1", "creative", 1)
        # A micro-batch's event time is its latest reward's: an unclicked impression's comes when its
        # click window closes.
        change = T0 + BEFORE * STEP_MS
        late = drift["event_time"] - change - cfg.attribution.click_window_ms
        assert -cfg.attribution.click_window_ms < late <= (400 + 6) * STEP_MS, late

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
