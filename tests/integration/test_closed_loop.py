"""The closed loop on real Kafka, Redis and the mini-cluster: serve from Redis, learn, serve better."""

from __future__ import annotations

import time

import learners
from scripts import demo, kafka_tools
from sim.config import SimConfig
from sim.market import Market
from state.policy_store import RedisPolicyStore

# Three campaigns of three creatives over two segments (traffic 29% / 71% for this seed), CTRs in
# [0.01, 0.1], 15k requests a day and budgets that never run out: ~3.5k impressions per campaign
# in the simulated day. For seed 3 the best creative of each campaign (traffic-weighted) beats the
# second best by 67%, 68% and 39%; the test checks that gap first (MIN_GAP).
SIM = SimConfig(
    days=1,
    seed=3,
    n_campaigns=3,
    creatives_per_campaign=3,
    n_segments=2,
    n_users=5_000,
    requests_per_day=15_000,
    ctr_range=(0.01, 0.1),
    daily_budget_range=(5_000.0, 6_000.0),
)
MIN_GAP = 0.3  # relative CTR lead of the true best creative over the second, per campaign
MIN_TRIALS = 500  # impressions the learner must have seen on the best creative


def _stop_loop(job, client, writer, cfg, topics) -> None:  # type: ignore[no-untyped-def]
    """Stop what ``demo.start_loop`` started (whatever of it did start) and drop the test's data."""
    if writer is not None:
        writer.abort()
    if client is not None:
        client.stop()
    if job is not None:
        job.cancel().result()
    store = RedisPolicyStore(cfg.redis.url, key_prefix=cfg.redis.key_prefix)
    store.purge()
    store.close()
    kafka_tools.delete_topics(cfg.kafka.bootstrap_servers, topics)


def test_each_campaign_learns_its_best_creative_and_versions_only_go_up(services, unique_prefix, tmp_path):
    """Each campaign's published creative policy ranks the true best creative first.

    The learners are keyed by campaign, not by segment, so "best" is the creative with the highest
    traffic-weighted true CTR over the campaign's segments (weights: the market's own request mix,
    ``demo.segment_traffic``), computed from the market truth. The creative reward is set to the
    click alone (conversion credit weight 0) so the learners' target is exactly that CTR; with the
    default weights it is the expected value per impression, much noisier over one simulated day.

    Tolerance: the ranking is by posterior mean and must be exact for every campaign; the settings
    make it far from marginal (gap >= MIN_GAP, >= MIN_TRIALS impressions on the best creative, and
    the Gaussian prior shrinks rarely tried creatives towards 0, away from the best one).
    Everything is seeded; only how many simulated hours pass between policy updates depends on
    wall-clock timing, which moves the exploration a little but not the conclusion.
    """
    ctrs = demo.campaign_ctrs(Market(SIM), demo.segment_traffic(Market(SIM)))
    truth = demo.best_by_campaign(ctrs)
    for campaign, by_creative in ctrs.items():
        first, second = sorted(by_creative.values(), reverse=True)[:2]
        assert first >= (1 + MIN_GAP) * second, f"settings: {campaign} gap too small to test: {by_creative}"

    bootstrap = services.kafka_bootstrap
    # One creative bandit per campaign, no segment agent: the serving nodes log the simulator's
    # labels (the creative agent per learned segment: the test below).
    cfg = demo.job_config(
        bootstrap, services.redis_url, prefix=unique_prefix, tables=str(tmp_path / "rewards")
    ).replace(
        rewards={"creative": {"click": 1.0, "credit": 0.0, "cost": 0.0}},
        learners={"creative": {"learner": "ThompsonSampling", "dist": "gaussian"}},
    )
    topics = cfg.kafka.input_topics() + cfg.kafka.output_topics()
    job = client = writer = None
    started = time.monotonic()
    try:
        job, client, writer, loop = demo.start_loop(cfg, SIM, seed=SIM.seed, segments=False)
        hours = loop.run()
        writer.close()
        writer = None
        assert len(hours) == 24
        # Served from published policies for most of the day, not from the uniform default.
        assert sum(h.from_policy for h in hours[-12:]) / 12 > 0.9

        store = RedisPolicyStore(cfg.redis.url, key_prefix=cfg.redis.key_prefix)
        try:
            for campaign, best in truth.items():
                record = store.get(campaign, "creative")
                assert record is not None, f"no creative policy published for {campaign}"
                policy = learners.from_params(record.params)
                means = {cr: policy.posterior_params(cr)[0] for cr in ctrs[campaign]}
                learned = max(means, key=means.__getitem__)
                assert learned == best, (
                    f"{campaign}: learned {learned}, true best {best}; posterior means {means}, "
                    f"true CTRs {ctrs[campaign]}"
                )
                trials = dict(zip(record.params["arms"], (s[0] for s in record.params["stats"]), strict=True))
                assert trials.get(best, 0) >= MIN_TRIALS, (campaign, trials)
        finally:
            store.close()

        # The client installed versions in increasing order only, for every key it followed.
        for campaign in truth:
            for agent in ("creative", "bid", "budget"):  # no segment agent here
                seen = client.versions_seen(campaign, agent)
                assert seen, f"client saw no version of {campaign}/{agent}"
                assert list(seen) == sorted(set(seen)), f"{campaign}/{agent}: versions {seen}"
        assert time.monotonic() - started < 600
    finally:
        _stop_loop(job, client, writer, cfg, topics)


# The demo's market: 4 segments whose best creatives differ, budgets that bind every day; six
# simulated days (the creative agent learns 4 creatives x 4 segments x 6 campaigns from ~6,000
# impressions a day).
AGENTS_SIM = demo.demo_sim_config(days=6, seed=7)


def test_four_agents_close_the_loop_within_budget(services, unique_prefix, tmp_path):
    """The demo's closed loop, all four agents on, over six simulated days. The segment agent
    clusters the users of each campaign; serving nodes put each user in its segment and the
    creative and bid agents learn and choose per that segment (never the simulator's label).

    - Over the last third of the run, the creative agent serves at least 90% of the CTR of the
      per-segment oracle (the best creative for each true segment), and more than the
      per-campaign oracle (the best a policy without segments can reach).
    - Each campaign's segments match the true ones with a purity of at least 0.9.
    - Every campaign spends within 5% of its daily budget each day, never over; on the last day
      the bid agent (with the budget agent pacing) gets more clicks than a fixed multiplier-1
      bidder serving the best creative per campaign (same market and draws, offline), at no more
      spend.

    "No more spend": the simulator stops a campaign for the day once less than 0.1% of its budget
    is left (``sim.simulator.EXHAUSTED_SHARE``), so two bidders that both exhaust their budgets
    differ by at most that share."""
    bootstrap = services.kafka_bootstrap
    cfg = demo.job_config(
        bootstrap, services.redis_url, prefix=unique_prefix, tables=str(tmp_path / "rewards")
    )
    topics = cfg.kafka.input_topics() + cfg.kafka.output_topics()
    baseline = demo.fixed_multiplier_baseline(AGENTS_SIM, multiplier=1.0)
    job = client = writer = None
    try:
        job, client, writer, loop = demo.start_loop(cfg, AGENTS_SIM, seed=AGENTS_SIM.seed)
        hours = loop.run()
        writer.close()
        writer = None
        days = AGENTS_SIM.days
        assert len(hours) == 24 * days

        last_third = [h for h in hours[-(24 * days) // 3 :] if h.impressions]
        served = sum(h.ctr * h.impressions for h in last_third)
        per_segment = sum(h.segment_oracle_ctr * h.impressions for h in last_third)
        per_campaign = sum(h.oracle_ctr * h.impressions for h in last_third)
        assert served >= 0.90 * per_segment, (
            f"creative CTR {served / per_segment:.3f} of the per-segment oracle's over the last third"
        )
        assert served > per_campaign, f"creative CTR {served / per_campaign:.3f} of the per-campaign oracle's"
        purity = demo.segment_purity(client, loop.sim.market)
        assert len(purity) == len(loop.sim.market.campaigns) and min(purity.values()) >= 0.9, purity

        budgets = {c.campaign_id: c.daily_budget for c in loop.sim.market.campaigns}
        spend = loop.sim.truth.spend
        for campaign, budget in budgets.items():
            assert len(spend[campaign]) == days
            for day, amount in enumerate(spend[campaign], start=1):
                assert 0.95 * budget <= amount <= budget, (campaign, day, amount, budget)

        clicks = demo.daily_clicks(hours)
        loop_spend = sum(v[-1] for v in spend.values())
        fixed_spend = sum(v[-1] for v in baseline.spend.values())
        assert loop_spend <= fixed_spend + 0.001 * sum(budgets.values()), (loop_spend, fixed_spend)
        assert clicks[-1] > baseline.clicks[-1], (
            f"last day: {clicks[-1]} clicks in the loop, {baseline.clicks[-1]} at fixed multiplier 1"
        )
        for campaign in budgets:
            for agent in demo.AGENTS:
                seen = client.versions_seen(campaign, agent)
                assert seen and list(seen) == sorted(set(seen)), (campaign, agent, seen)
    finally:
        _stop_loop(job, client, writer, cfg, topics)
