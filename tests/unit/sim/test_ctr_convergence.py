"""Required check: under the uniform logging policy, the empirical CTR of every creative converges
to its true CTR.

Tolerance: |empirical - expected| <= 4 standard errors, where for n impressions with true click
probabilities p_i the expected CTR is mean(p_i) and the standard error sqrt(sum p_i (1 - p_i)) / n.
With ~60 cells checked, a 4-SE band leaves a false-alarm chance under 0.5% per seed, and the seed
is fixed, so the test is deterministic.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict

import pytest

from contract.events import CLICKS, IMPRESSIONS
from sim import SimConfig, Simulator, UniformRandomPolicy
from sim.config import HOUR_MS

Z = 4.0
MIN_TRIALS = 1000

# Budgets that never bind and bids that always win, so every request becomes an impression.
CONFIG = SimConfig(
    seed=2024,
    days=4,
    n_campaigns=3,
    creatives_per_campaign=4,
    n_segments=4,
    n_users=20_000,
    requests_per_day=30_000,
    daily_budget_range=(1e7, 1e7),
    bid_multipliers=(100.0,),
)


@pytest.fixture(scope="module")
def trials():
    sim = Simulator(CONFIG, UniformRandomPolicy(seed=CONFIG.seed))
    impressions, clicked = {}, set()
    for r in sim.records():
        if r.malformed is not None:
            continue
        event = json.loads(r.value)
        if r.topic == IMPRESSIONS:
            impressions[event["event_id"]] = event
        elif r.topic == CLICKS:
            clicked.add(event["impression_id"])
    # Clicks of the last hour's impressions may fall after the simulated period: leave those out.
    cutoff = CONFIG.end_ms - HOUR_MS
    rows = [
        (e["campaign_id"], e["segment"], e["creative_id"], e["impression_id"] in clicked)
        for e in impressions.values()
        if e["ts"] < cutoff
    ]
    return sim.market, rows


def _check(cells: dict, label: str) -> int:
    checked = 0
    for key, (n, clicks, p_sum, var_sum) in cells.items():
        if n < MIN_TRIALS:
            continue
        empirical, expected, se = clicks / n, p_sum / n, math.sqrt(var_sum) / n
        assert abs(empirical - expected) <= Z * se, (
            f"{label} {key}: {empirical:.4f} vs true {expected:.4f} (se {se:.4f})"
        )
        checked += 1
    return checked


def _cells(market, rows, key_of):
    cells: dict = defaultdict(lambda: [0, 0, 0.0, 0.0])
    for campaign, segment, creative, click in rows:
        p = market.true_ctr(campaign, segment, creative)
        cell = cells[key_of(campaign, segment, creative)]
        cell[0] += 1
        cell[1] += click
        cell[2] += p
        cell[3] += p * (1 - p)
    return cells


def test_empirical_ctr_per_campaign_and_creative_converges_to_the_true_ctr(trials):
    market, rows = trials
    assert len(rows) > 80_000
    checked = _check(_cells(market, rows, lambda c, s, cr: (c, cr)), "campaign/creative")
    assert checked == CONFIG.n_campaigns * CONFIG.creatives_per_campaign


def test_empirical_ctr_per_segment_cell_converges_to_the_true_ctr(trials):
    market, rows = trials
    checked = _check(_cells(market, rows, lambda c, s, cr: (c, s, cr)), "campaign/segment/creative")
    assert checked == CONFIG.n_campaigns * CONFIG.n_segments * CONFIG.creatives_per_campaign


def test_empirical_best_creative_is_the_true_best_where_the_gap_is_resolvable(trials):
    market, rows = trials
    cells = _cells(market, rows, lambda c, s, cr: (c, s, cr))
    resolved = 0
    for camp in market.campaigns:
        for segment in market.segments:
            stats = {cr: cells[(camp.campaign_id, segment, cr)] for cr in camp.creatives}
            ctr = {cr: clicks / n for cr, (n, clicks, _, _) in stats.items()}
            best = market.best_creative(camp.campaign_id, segment)
            runner_up = max(
                (cr for cr in camp.creatives if cr != best), key=lambda cr: stats[cr][2] / stats[cr][0]
            )
            gap = stats[best][2] / stats[best][0] - stats[runner_up][2] / stats[runner_up][0]
            se = math.sqrt(
                stats[best][3] / stats[best][0] ** 2 + stats[runner_up][3] / stats[runner_up][0] ** 2
            )
            if gap > 4.5 * se:  # wide enough that noise flips the order with probability < 1e-5
                assert max(ctr, key=ctr.__getitem__) == best, (camp.campaign_id, segment, ctr)
                resolved += 1
    assert resolved >= len(market.campaigns) * len(market.segments) // 2
