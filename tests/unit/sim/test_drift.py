"""Market drift: the competitors' price level moves by day and within the day, and only prices."""

from __future__ import annotations

from sim.config import SimConfig
from sim.simulator import Simulator


def test_a_stationary_market_has_level_one_and_a_drifting_one_moves_within_its_bounds():
    flat = Simulator(SimConfig(days=1))
    assert {flat._price_level(h) for h in range(24)} == {1.0}
    daily, intraday = 0.3, 0.2
    sim = Simulator(SimConfig(days=1, price_drift_daily=daily, price_drift_intraday=intraday))
    levels = []
    for _day in range(20):
        day = [sim._price_level(h) for h in range(24)]
        assert all((1 - daily) * (1 - intraday) <= x <= (1 + daily) * (1 + intraday) for x in day)
        assert max(day) > min(day)  # moves within the day
        levels.append(sum(day) / 24)
    assert max(levels) - min(levels) > 0.2  # and from day to day


def test_drift_changes_prices_and_nothing_the_bids_do_not_decide():
    base = SimConfig(days=2, n_users=500, requests_per_day=2_000)
    flat = Simulator(base)
    drifting = Simulator(
        SimConfig(**{**base.__dict__, "price_drift_daily": 0.3, "price_drift_intraday": 0.2})
    )
    for _ in flat.run():
        pass
    for _ in drifting.run():
        pass
    assert flat.stats["requests"] == drifting.stats["requests"]  # the same traffic
    assert flat.stats["won"] != drifting.stats["won"]  # other prices, other wins
    assert flat.market.ctr.tolist() == drifting.market.ctr.tolist()  # the same market otherwise
