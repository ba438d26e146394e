from __future__ import annotations

import math

import numpy as np
import pytest

from sim.config import DAY_MS, HOUR_MS, SimConfig
from sim.market import Market

CONFIG = SimConfig(n_users=2000)


@pytest.fixture(scope="module")
def market() -> Market:
    return Market(CONFIG)


def test_same_config_builds_the_same_market(market):
    again = Market(CONFIG)
    assert np.array_equal(market.ctr, again.ctr)
    assert market.campaigns == again.campaigns
    assert np.array_equal(market.user_segment, again.user_segment)
    assert not np.array_equal(market.ctr, Market(SimConfig(n_users=2000, seed=8)).ctr)


def test_ctrs_lie_in_the_configured_range(market):
    lo, hi = CONFIG.ctr_range
    assert market.ctr.min() >= lo and market.ctr.max() <= hi


def test_best_creative_differs_by_segment_and_wins_by_a_learnable_margin(market):
    for camp in market.campaigns:
        best = {market.best_creative(camp.campaign_id, s) for s in market.segments}
        assert len(best) > 1, camp.campaign_id
        for s in market.segments:
            row = sorted((market.true_ctr(camp.campaign_id, s, cr) for cr in camp.creatives), reverse=True)
            assert row[0] >= 1.4 * row[1]  # large enough gap to learn from a few thousand impressions


def test_lookups_name_what_is_unknown(market):
    with pytest.raises(ValueError, match="unknown campaign_id 'nope'"):
        market.true_ctr("nope", "seg0", "c00-cr0")
    with pytest.raises(ValueError, match="unknown segment 'segX'"):
        market.best_creative("c00", "segX")
    with pytest.raises(ValueError, match="creative 'c01-cr0' does not belong to campaign 'c00'"):
        market.true_ctr("c00", "seg0", "c01-cr0")


def test_best_creatives_table_matches_best_creative(market):
    table = market.best_creatives()
    assert len(table) == CONFIG.n_campaigns * CONFIG.n_segments
    assert table[("c03", "seg2")] == market.best_creative("c03", "seg2")


def test_market_price_sampling_matches_win_probability_and_expected_cost(market):
    rng = np.random.default_rng(0)
    n = 200_000
    for i, segment in enumerate(market.segments):
        prices = market.sample_market_prices(rng, np.full(n, i))
        bid = float(np.median(prices)) * 1.3
        win = prices <= bid
        # Binomial and mean tolerances: 5 standard errors.
        assert abs(win.mean() - market.win_probability(segment, bid)) < 5 * math.sqrt(0.25 / n)
        cost = np.where(win, prices, 0.0)
        assert abs(cost.mean() - market.expected_cost(segment, bid)) < 5 * cost.std() / math.sqrt(n)
        scalar = [market.sample_market_price(rng, segment) for _ in range(20_000)]
        assert abs(np.median(scalar) / np.median(prices) - 1) < 0.05
    assert market.win_probability("seg0", 0.0) == 0.0 and market.expected_cost("seg0", -1.0) == 0.0


def test_conversion_delays_are_long_tailed_and_at_most_30_days(market):
    delays = market.sample_conversion_delay_ms(np.random.default_rng(1), 200_000)
    assert delays.min() >= 1 and delays.max() <= 30 * DAY_MS
    median_h = np.median(delays) / HOUR_MS
    assert 0.8 * CONFIG.conv_delay_median_h < median_h < 1.2 * CONFIG.conv_delay_median_h
    assert (delays <= 3 * DAY_MS).mean() > 0.7  # most within a few days
    assert (delays > 10 * DAY_MS).mean() > 0.005  # and a real tail


def test_click_delays_are_minutes_and_well_within_an_hour(market):
    delays = market.sample_click_delay_ms(np.random.default_rng(2), 100_000)
    assert delays.max() <= CONFIG.click_delay_max_s * 1000 < HOUR_MS
    assert 10_000 < np.median(delays) < 30_000


def test_conversion_probability_is_lower_for_views(market):
    for camp in market.campaigns:
        clicked = market.conversion_probability(camp.campaign_id, clicked=True)
        viewed = market.conversion_probability(camp.campaign_id, clicked=False)
        assert 0 < viewed < clicked <= 1


def test_conversion_values_keep_the_campaign_mean(market):
    rng = np.random.default_rng(3)
    values = market.sample_conversion_values(rng, np.zeros(50_000, dtype=int))
    mean = market.conversion_value_mean("c00")
    assert abs(values.mean() / mean - 1) < 0.02 and values.min() >= 0.01
    assert market.sample_conversion_value(rng, "c00") > 0


def test_base_bid_is_the_expected_value_under_a_uniform_creative_choice(market):
    camp = market.campaigns[0]
    values = [
        market.expected_value(camp.campaign_id, s, cr) for s in market.segments for cr in camp.creatives
    ]
    assert camp.base_bid == pytest.approx(np.mean(values), rel=1e-4)


def test_users_revisit_with_skew_and_features_reveal_the_segment(market):
    users = market.sample_users(np.random.default_rng(4), 100_000)
    counts = np.bincount(users, minlength=CONFIG.n_users)
    top = np.sort(counts)[::-1]
    assert top[: CONFIG.n_users // 10].sum() > 0.3 * counts.sum()  # top 10% of users: >30% of visits
    x = market.features(np.arange(CONFIG.n_users), np.zeros(CONFIG.n_users, dtype=np.int64))
    assert x.shape == (CONFIG.n_users, CONFIG.feature_dim)
    centroids = np.stack([x[market.user_segment == s, 2:].mean(axis=0) for s in range(CONFIG.n_segments)])
    nearest = np.argmin(((x[:, None, 2:] - centroids[None]) ** 2).sum(axis=2), axis=1)
    assert (nearest == market.user_segment).mean() > 0.9
