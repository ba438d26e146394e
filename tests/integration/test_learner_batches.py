"""The learners' micro-batches computed in SQL add up to numpy sums over the reward rows and the
auction requests: one row per key and window, its arms sorted and unique; the segment agent's
samples are the feature vectors of the impressions its hash picks."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict

import numpy as np
import pytest

from contract import events
from jobs import feedback_job
from learners.bid_agent import NOT_ENTERED
from scripts import kafka_tools
from sim.config import SimConfig
from sim.policies import UniformRandomPolicy
from sim.simulator import Simulator
from sim.writers import KafkaWriter
from sql import batches as batches_sql
from tests.integration.configs import job_config


def test_batch_sums_equal_numpy_sums_over_reward_rows(services, unique_prefix, tmp_path):
    bootstrap = services.kafka_bootstrap
    # The creative agent's learner is contextual, so its micro-batches carry Σxxᵀ and Σrx; the
    # other agents' learners are not, and theirs carry NULL instead.
    features = [f"f{i}" for i in range(1, 9)]
    cfg = job_config(
        services,
        unique_prefix,
        tmp_path / "rewards",
        batches={"interval_ms": 500, "feature_dim": len(features)},
        job={"learners": False},
        learners={
            "creative": {"learner": "LinUCB", "features": features},
            "segment": {"learner": "SegmentAgent", "n_segments": 3, "sample_rate": SAMPLE_RATE},
        },
    )
    assert cfg.learners.contextual_agents() == ["creative"]
    topics = cfg.kafka.input_topics() + cfg.kafka.output_topics()
    kafka_tools.create_topics(bootstrap, topics)
    # Pacing rates logged too, so some requests are throttled (bid 0).
    sim = Simulator(
        SimConfig(days=1, n_users=500, requests_per_day=3_000),
        policy=UniformRandomPolicy(seed=7, pacing_rates=(0.5, 1.0), segments=3),
    )
    auctions: dict[str, dict] = {}  # the clean requests, by event id (duplicates are one)
    with KafkaWriter(bootstrap, topic_prefix=unique_prefix) as writer:
        for chunk in sim.run():
            writer.write(chunk.records)
            for r in chunk.records:
                if r.topic == events.AUCTIONS and r.malformed is None:
                    payload = json.loads(r.value)
                    auctions[payload["event_id"]] = payload
    for event_id in sim.noise_log.late:
        auctions.pop(event_id, None)  # to the late topic
    assert auctions
    # Unbounded, as in production: processing-time micro-batches only fire while the job runs.
    result = feedback_job.run(cfg, wait=False)
    try:
        kafka_tools.wait_until_stable(bootstrap, cfg.kafka.topic("rewards"))
        time.sleep(2 * cfg.batches.interval_ms / 1000 + 2)
        rewards = [json.loads(v) for v in kafka_tools.read_all(bootstrap, cfg.kafka.topic("rewards"))]
        batches = [json.loads(v) for v in kafka_tools.read_all(bootstrap, cfg.kafka.topic("batches"))]
    finally:
        result.cancel().result()
        kafka_tools.delete_topics(bootstrap, topics)

    d = cfg.batches.feature_dim
    expected: dict = defaultdict(
        lambda: {
            "trials": 0.0,
            "wins": 0.0,
            "reward_sum": 0.0,
            "delayed_sum": 0.0,
            "cost_sum": 0.0,
            "ipw_reward_sum": 0.0,
            "xx": np.zeros((d, d)),
            "rx": np.zeros(d),
        }
    )
    per_request = set(batches_sql.AUCTION_AGENTS)
    for a in auctions.values():
        if a["bid"] == 0:  # throttled: volume for the bid agent
            expected[(a["campaign_id"], "bid", NOT_ENTERED)]["trials"] += 1
        for decision in a["decisions"]:
            e = expected[(a["campaign_id"], decision["agent"], decision["action"])]
            e["trials"] += 1
            e["wins"] += a["won"]
            e["cost_sum"] += a.get("clearing_price", 0.0) if a["won"] else 0.0
    for r in rewards:
        key = (r["campaign_id"], r["agent"], r["arm"] if "arm" in r else r["action"])
        e = expected[key]
        x = np.array(r["features"])
        if r["agent"] in per_request:
            # Value only: the click and credit terms of the reward; trials and spend are requests'.
            w = cfg.rewards.weights(r["agent"])
            value = w.click * r["click"] + w.credit * r["credit"]
            e["reward_sum" if r["kind"] == "initial" else "delayed_sum"] += value
            e["ipw_reward_sum"] += value / r["propensity"]
            continue
        e["wins"] += r["kind"] == "initial"
        if r["kind"] == "initial":
            e["trials"] += 1
            e["reward_sum"] += r["reward"]
            e["xx"] += np.outer(x, x)
        else:
            e["delayed_sum"] += r["reward"]
        e["cost_sum"] += r["cost"]
        e["ipw_reward_sum"] += r["reward"] / r["propensity"]
        e["rx"] += r["reward"] * x
    got: dict = defaultdict(
        lambda: {
            "trials": 0.0,
            "wins": 0.0,
            "reward_sum": 0.0,
            "delayed_sum": 0.0,
            "cost_sum": 0.0,
            "ipw_reward_sum": 0.0,
            "xx": np.zeros((d, d)),
            "rx": np.zeros(d),
        }
    )
    windows = Counter((b["window_end"], b["campaign_id"], b["agent"]) for b in batches)
    assert max(windows.values()) == 1, "one micro-batch row per key and window"
    for b in batches:
        arms = [(a["state"], a["arm"]) for a in b["arms"]]
        assert arms == sorted(set(arms)), b
        for a in b["arms"]:
            g = got[(b["campaign_id"], b["agent"], a["arm"])]
            for name in ("trials", "wins", "reward_sum", "delayed_sum", "cost_sum", "ipw_reward_sum"):
                g[name] += a[name]
            if b["agent"] == "creative":
                g["xx"] += np.array(a["xx"]).reshape(d, d)
                g["rx"] += np.array(a["rx"])
            else:
                assert a["xx"] is None and a["rx"] is None, b
            if b["agent"] in per_request:
                day, block, segment = a["state"].split("|")
                assert 0 <= int(block) < cfg.campaigns.time_blocks, a
            else:
                assert a["state"] == "" and a["trials"] == a["wins"], a
    assert set(got) == set(expected)
    for key, e in expected.items():
        g = got[key]
        for name in ("trials", "wins", "reward_sum", "delayed_sum", "cost_sum", "ipw_reward_sum"):
            assert g[name] == pytest.approx(e[name], rel=1e-9, abs=1e-9), (key, name)
        if key[1] == "creative":
            np.testing.assert_allclose(g["xx"], e["xx"], rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(g["rx"], e["rx"], rtol=1e-9, atol=1e-9)

    # Samples: the features of the segment agent's initial rows whose impression id the hash
    # picks (Java's String.hashCode, as Flink's HASH_CODE), in that agent's batches only.
    picked = Counter(
        (r["campaign_id"], tuple(r["features"]))
        for r in rewards
        if r["agent"] == "segment" and r["kind"] == "initial" and _sampled(r["impression_id"], SAMPLE_RATE)
    )
    sampled = Counter((b["campaign_id"], tuple(x)) for b in batches for x in b["samples"] or ())
    assert all(not b["samples"] for b in batches if b["agent"] != "segment")
    initial = sum(1 for r in rewards if r["agent"] == "segment" and r["kind"] == "initial")
    assert 0.3 * initial < sum(picked.values()) < 0.7 * initial
    assert sampled == picked


SAMPLE_RATE = 0.5


def _sampled(impression_id: str, rate: float) -> bool:
    """``MOD(ABS(HASH_CODE(impression_id) * SAMPLE_MIX), SAMPLE_SCALE) < rate * SAMPLE_SCALE``."""
    h = 0
    for char in impression_id:
        h = (31 * h + ord(char)) & 0xFFFFFFFF
    h = h - (1 << 32) if h >= 1 << 31 else h
    remainder = abs(h * batches_sql.SAMPLE_MIX) % batches_sql.SAMPLE_SCALE
    return remainder < round(rate * batches_sql.SAMPLE_SCALE)
