"""The simulated stream: determinism, auctions and budgets, event timing, truth, live policies."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from contract.events import CLICKS, CONVERSIONS, IMPRESSIONS
from sim import FixedPolicy, SimConfig, Simulator, UniformRandomPolicy
from sim.config import DAY_MS, HOUR_MS
from sim.policies import Decision, Request

TINY = SimConfig(seed=5, days=1, n_campaigns=3, n_users=500, requests_per_day=3000)


def _stream(config: SimConfig, policy=None) -> list[tuple[str, bytes, bytes, int]]:
    return [(r.topic, r.key, r.value, r.arrival_ms) for r in Simulator(config, policy).records()]


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not():
    first = _stream(TINY)
    assert first == _stream(TINY)
    assert first != _stream(SimConfig(**{**TINY.to_dict(), "seed": 6}))


def test_policies_face_the_same_requests_under_a_seed():
    # Common random numbers: the request stream does not depend on the policy's answers.
    seen: dict[str, list[tuple[int, str]]] = {"a": [], "b": []}

    class Recording:
        def __init__(self, name: str, inner) -> None:
            self.name, self.inner = name, inner

        def decide(self, request: Request) -> list[Decision]:
            seen[self.name].append((request.ts, request.user_id))
            return self.inner.decide(request)

    config = SimConfig(**{**TINY.to_dict(), "daily_budget_range": (1e6, 1e6)})
    list(Simulator(config, Recording("a", UniformRandomPolicy(seed=1))).records())
    list(Simulator(config, Recording("b", FixedPolicy(bid_multiplier=2.0))).records())
    assert len(seen["a"]) > 1000 and seen["a"] == seen["b"]


def test_only_won_auctions_make_impressions_and_budgets_are_never_exceeded(noisy_run):
    impressions = noisy_run.unique(IMPRESSIONS).values()
    budgets = {c.campaign_id: c.daily_budget for c in noisy_run.sim.market.campaigns}
    spend: dict[tuple[str, int], float] = defaultdict(float)
    for imp in impressions:
        assert 0 < imp["win_price"] <= imp["bid_price"]
        spend[(imp["campaign_id"], (imp["ts"] - noisy_run.config.start_ms) // DAY_MS)] += imp["win_price"]
    assert all(total <= budgets[c] + 1e-6 for (c, _), total in spend.items())
    # The budgets really bind: some campaign spends (almost) all of it and then stops.
    assert any(total > 0.99 * budgets[c] for (c, _), total in spend.items())
    assert noisy_run.sim.stats["exhausted"] > 0
    truth_spend = noisy_run.sim.truth.spend
    for (c, day), total in spend.items():
        assert truth_spend[c][day] == pytest.approx(total, abs=1e-6)


def test_impressions_carry_the_policy_decisions(noisy_run):
    market = noisy_run.sim.market
    for imp in noisy_run.unique(IMPRESSIONS).values():
        agents = {d["agent"]: d for d in imp["decisions"]}
        assert agents["creative"]["action"] == imp["creative_id"]
        assert agents["creative"]["propensity"] == 1 / noisy_run.config.creatives_per_campaign
        assert agents["bid"]["propensity"] == 1 / len(noisy_run.config.bid_multipliers)
        camp = market.campaign(imp["campaign_id"])
        assert imp["bid_price"] <= camp.base_bid * float(agents["bid"]["action"]) + 1e-6
        assert len(imp["features"]) == noisy_run.config.feature_dim


def test_clicks_follow_their_impression_within_minutes(noisy_run):
    impressions = noisy_run.unique(IMPRESSIONS)
    by_imp = {e["impression_id"]: e for e in impressions.values()}
    clicks = noisy_run.unique(CLICKS).values()
    assert len(clicks) > 100
    for click in clicks:
        delay = click["ts"] - by_imp[click["impression_id"]]["ts"]
        assert 0 < delay <= noisy_run.config.click_delay_max_s * 1000 < HOUR_MS
    assert len({c["impression_id"] for c in clicks}) == len(clicks)  # at most one click per impression


def test_conversions_follow_a_touch_of_the_same_user_and_campaign_within_30_days(noisy_run):
    emitted = noisy_run.unique(CONVERSIONS)
    truth = noisy_run.sim.truth.conversions
    assert {c["event_id"] for c in truth} == set(emitted)
    impressions = {e["impression_id"]: e for e in noisy_run.unique(IMPRESSIONS).values()}
    clicks = {c["impression_id"]: c for c in noisy_run.unique(CLICKS).values()}
    causes = defaultdict(int)
    for conv in truth:
        causes[conv["cause"]] += 1
        assert conv["value"] > 0
        for touch in conv["touches"]:
            assert 0 <= conv["ts"] - touch["ts"] <= 30 * DAY_MS
            assert (touch["user_id"], touch["campaign_id"]) == (conv["user_id"], conv["campaign_id"])
            source = (
                impressions[touch["impression_id"]]
                if touch["kind"] == "impression"
                else clicks[touch["impression_id"]]
            )
            assert source["ts"] == touch["ts"]
        if conv["cause"] == "organic":
            continue
        imp = impressions[conv["cause_impression_id"]]
        assert (imp["user_id"], imp["campaign_id"]) == (conv["user_id"], conv["campaign_id"])
        touch_ts = clicks[imp["impression_id"]]["ts"] if conv["cause"] == "click" else imp["ts"]
        assert 0 < conv["ts"] - touch_ts <= 30 * DAY_MS
        kinds = {(t["kind"], t["impression_id"]) for t in conv["touches"]}
        assert ("impression", imp["impression_id"]) in kinds
        assert conv["cause"] == "view" or ("click", imp["impression_id"]) in kinds
    assert causes["click"] > 0 and causes["view"] > 0 and causes["organic"] > 0


def test_events_past_the_simulated_period_are_not_emitted(noisy_run):
    end = noisy_run.config.end_ms
    assert all(r.ts < end for r in noisy_run.clean())
    assert noisy_run.sim.truth.counts["after_end.ad.conversions"] > 0


def test_the_policy_is_asked_as_simulated_time_advances():
    asked: list[int] = []

    class Watching(UniformRandomPolicy):
        def decide(self, request: Request) -> list[Decision]:
            asked.append(request.ts)
            return super().decide(request)

    sim = Simulator(TINY, Watching(seed=1))
    chunks = sim.run()
    first = next(chunks)
    assert asked and max(asked) < TINY.start_ms + HOUR_MS  # nothing decided ahead of time
    assert all(first.start_ms <= r.arrival_ms < first.end_ms for r in first.records)
    rest = list(chunks)
    assert len(rest) == 24 and asked == sorted(asked)
    assert all(c.start_ms == TINY.start_ms + c.index * HOUR_MS for c in rest)


def test_a_new_policy_takes_over_mid_run():
    sim = Simulator(TINY, UniformRandomPolicy(seed=1, policy_version=1))
    switch = TINY.start_ms + 12 * HOUR_MS
    versions: dict[bool, set[int]] = {True: set(), False: set()}
    for chunk in sim.run():
        if chunk.end_ms == switch:
            sim.policy = FixedPolicy(sim.market.best_creatives(), policy_version=2)
        for r in chunk.records:
            if r.topic == IMPRESSIONS and r.malformed is None:
                imp = json.loads(r.value)
                versions[imp["ts"] >= switch] |= {d["policy_version"] for d in imp["decisions"]}
                if imp["ts"] >= switch:
                    assert imp["creative_id"] == sim.market.best_creative(imp["campaign_id"], imp["segment"])
    assert versions == {False: {1}, True: {2}}


def test_pacing_decisions_throttle_auctions():
    sim = Simulator(TINY, UniformRandomPolicy(seed=2, pacing_rates=(0.0, 1.0)))
    records = list(sim.records())
    assert sim.stats["throttled"] > 0.3 * sim.stats["requests"]
    budget = [d for r in records if r.topic == IMPRESSIONS and r.malformed is None
              for d in json.loads(r.value)["decisions"] if d["agent"] == "budget"]  # fmt: skip
    assert budget and {d["action"] for d in budget} == {"1"}


def test_a_bad_policy_fails_loudly_naming_itself():
    class Broken:
        def decide(self, request: Request) -> list[Decision]:
            return [Decision("creative", request.creatives[0], 0.0, 0)]

    with pytest.raises(ValueError, match="policy Broken: propensity of creative must be in"):
        list(Simulator(TINY, Broken()).records())


def test_a_simulator_runs_once():
    sim = Simulator(TINY)
    list(sim.records())
    with pytest.raises(RuntimeError, match="runs once"):
        next(sim.run())
