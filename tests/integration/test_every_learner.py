"""Every learner runs in the job for at least one key, and what it publishes serves: the serving
client turns it into a choice with its propensity. Three learners per run, one per agent."""

from __future__ import annotations

import json

import pytest

from contract.serving import record_errors
from jobs import feedback_job
from scripts import kafka_tools
from sim.config import SimConfig
from sim.policies import UniformRandomPolicy, format_multiplier
from sim.simulator import Simulator
from sim.writers import KafkaWriter
from state.codec import encode_record
from state.policy_store import RedisPolicyStore
from state.serving_client import ServingClient
from tests.integration.configs import job_config

SIM = SimConfig(days=1, n_users=500, requests_per_day=3_000, n_campaigns=3)
RATES = (0.25, 0.5, 0.75, 1.0)
FEATURES = [f"f{i}" for i in range(1, 9)]

RUNS = {
    "bandits": {
        "creative": {"learner": "Exp3"},
        "bid": {"learner": "UCB"},
        "budget": {"learner": "ThompsonSampling", "dist": "gaussian"},
    },
    "contextual-and-rl": {
        "creative": {"learner": "LinUCB", "features": FEATURES},
        "bid": {"learner": "BidAgent", "multipliers": [format_multiplier(m) for m in SIM.bid_multipliers]},
        "budget": {"learner": "BudgetPacer"},
    },
    "epsilon-greedy": {
        "creative": {"learner": "EpsilonGreedy", "epsilon": 0.2},
        "bid": {"learner": "EpsilonGreedy"},
        "budget": {"learner": "BudgetPacer"},
    },
    # River's own policies, a bandit per segment, and the segment agent on every impression.
    "river-and-segments": {
        "creative": {
            "learner": "PerSegment",
            "base": {"learner": "RiverBandit", "policy": "ThompsonSampling"},
        },
        "bid": {"learner": "RiverBandit", "policy": "EpsilonGreedy", "epsilon": 0.2},
        "budget": {"learner": "RiverBandit", "policy": "UCB"},
        "segment": {"learner": "SegmentAgent", "n_segments": 3, "sample_rate": 1.0, "warmup": 30},
    },
}


@pytest.mark.parametrize("run", sorted(RUNS))
def test_each_learner_learns_in_the_job_and_its_params_serve(services, unique_prefix, tmp_path, run):
    bootstrap = services.kafka_bootstrap
    cfg = job_config(
        services,
        unique_prefix,
        tmp_path / "rewards",
        kafka={"bounded": True},
        batches={"event_interval_ms": 3_600_000},
        learners=RUNS[run],
        campaigns={"budgets": {c.campaign_id: c.daily_budget for c in Simulator(SIM).market.campaigns}},
    )
    topics = cfg.kafka.input_topics() + cfg.kafka.output_topics()
    kafka_tools.create_topics(bootstrap, topics)
    segments = RUNS[run].get("segment", {}).get("n_segments", 0)
    sim = Simulator(SIM, policy=UniformRandomPolicy(seed=SIM.seed, pacing_rates=RATES, segments=segments))
    with KafkaWriter(bootstrap, topic_prefix=unique_prefix) as writer:
        for chunk in sim.run():
            writer.write(chunk.records)
    store = RedisPolicyStore(cfg.redis.url, key_prefix=cfg.redis.key_prefix)
    client = None
    try:
        feedback_job.run(cfg, wait=True, flink_overrides={"restart-strategy.type": "none"})
        records = {(r.campaign_id, r.agent): r for r in store.load_all()}
        for record in records.values():  # what other languages read: the serving protocol's schemas
            assert record_errors(json.loads(encode_record(record))) == [], record
        campaigns = [c.campaign_id for c in sim.market.campaigns]
        for agent, spec in RUNS[run].items():
            for campaign in campaigns:
                record = records.get((campaign, agent))
                assert record is not None, f"{run}: no {agent} policy for {campaign}"
                assert record.params["learner"] == spec["learner"] and record.version >= 2, record

        client = ServingClient(store, seed=1, stale_after_ms=86_400_000)
        client.start()
        assert client.wait_for_version(
            campaigns[0], "creative", records[(campaigns[0], "creative")].version, timeout_s=10
        )
        camp = sim.market.campaigns[0]
        context = {
            "segment": sim.market.segments[0],
            "features": [0.1] * len(FEATURES),
            "time_block": 12,
            "block_elapsed": 0.5,
            "remaining_budget": camp.daily_budget / 2,
        }
        multipliers = [format_multiplier(m) for m in SIM.bid_multipliers]
        rates = [format_multiplier(r) for r in RATES]
        for campaign in campaigns:
            creatives = list(sim.market.campaign(campaign).creatives)
            if segments:
                # The segment agent's segment of a user: the nearest learned centre, propensity 1.
                segment = client.segment(campaign, context["features"], segments)
                assert segment.source == "policy" and segment.propensity == 1.0, segment
                assert segment.policy_version == records[(campaign, "segment")].version
                context["segment"] = segment.action
                centroids = records[(campaign, "segment")].params["centroids"]
                assert len(centroids) == segments and all(len(c) == len(FEATURES) for c in centroids)
            choice = client.choose(campaign, "creative", context, creatives)
            bid = client.bid(campaign, context, base_bid=0.2, multipliers=multipliers)
            pace = client.choose(campaign, "budget", context, rates)
            for agent, got in (("creative", choice), ("bid", bid), ("budget", pace)):
                assert got.source == "policy", (run, campaign, agent, got)
                assert 0.0 < got.propensity <= 1.0, (run, campaign, agent, got)
                assert got.policy_version == records[(campaign, agent)].version
            assert bid.multiplier in multipliers and 0.0 <= bid.amount <= context["remaining_budget"]
            assert pace.action in rates
        if run == "contextual-and-rl":
            # The RL agents and LinUCB read their context: a missing key is named, never defaulted.
            with pytest.raises(ValueError, match="remaining_budget"):
                client.choose(campaigns[0], "budget", {"time_block": 3}, rates)
            with pytest.raises(ValueError, match="segment"):
                client.choose(campaigns[0], "bid", {"time_block": 3, "remaining_budget": 5.0}, multipliers)
            with pytest.raises(ValueError, match="f1"):
                client.choose(campaigns[0], "creative", {"segment": "x"}, list(camp.creatives))
            # The budget left by the spend the job published with the pacer: today's, below budget.
            last_ts = SIM.start_ms + SIM.days * 86_400_000 - 1
            left = client.remaining_budget(camp.campaign_id, last_ts)
            spent = sim.truth.spend[camp.campaign_id][-1]
            assert left == pytest.approx(camp.daily_budget - spent, abs=0.05 * camp.daily_budget)
    finally:
        if client is not None:
            client.stop()
        store.purge()
        store.close()
        kafka_tools.delete_topics(bootstrap, topics)
