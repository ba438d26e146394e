"""A minimal auction environment on top of ``sim.market`` for checking learners against ground truth.

``sim.simulator`` emits the full noisy event stream (JSON records, attribution inputs) for the
feedback job; checking learners needs only the market's ground truth and a fast loop: requests
with segments and market prices, a second-price auction, clicks drawn from the true CTRs. This
module builds that loop from what ``sim.market`` exposes (``Market``, ``true_ctr``/``ctr``,
``best_creative``, ``sample_market_prices``, campaigns with budgets and base bids).

All draws of a (campaign, day) are made up front from a seed, independent of the bidder, so two
bidders run on the same seed face the same requests, prices and click draws (common random
numbers).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from learners.batch import ArmStats, Batch
from sim.config import DAY_MS, HOUR_MS, SimConfig
from sim.market import Campaign, Market


def market(seed: int = 7, **overrides: object) -> Market:
    return Market(SimConfig(seed=seed, **overrides))  # type: ignore[arg-type]


@dataclass(frozen=True)
class DayDraws:
    """Every random draw of one campaign's day, in time order."""

    hour: np.ndarray  # time block of each request
    elapsed: np.ndarray  # fraction of the hour elapsed
    segment: np.ndarray  # segment index
    price: np.ndarray  # market price (highest competing bid)
    u_click: np.ndarray
    u_pace: np.ndarray
    u_policy: np.ndarray


def day_draws(m: Market, camp: Campaign, day: int, seed: int) -> DayDraws:
    """Requests of one campaign over one day: diurnal Poisson volume as the simulator draws it."""
    rng = np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(camp.index, day)))
    cfg = m.config
    hours, elapsed = [], []
    for h in range(24):
        rate = cfg.requests_per_day / 24 * (1 + cfg.diurnal_amplitude * math.sin(2 * math.pi * (h - 6) / 24))
        n = int(rng.poisson(rate * camp.traffic_share))
        hours.append(np.full(n, h))
        elapsed.append(np.sort(rng.random(n)))
    hour = np.concatenate(hours)
    n = len(hour)
    seg = m.user_segment[m.sample_users(rng, n)]
    return DayDraws(
        hour=hour,
        elapsed=np.concatenate(elapsed),
        segment=seg,
        price=m.sample_market_prices(rng, seg),
        u_click=rng.random(n),
        u_pace=rng.random(n),
        u_policy=rng.random(n),
    )


@dataclass
class DayResult:
    spend: float = 0.0
    clicks: int = 0
    wins: int = 0
    requests: int = 0
    spend_by_hour: list[float] = field(default_factory=lambda: [0.0] * 24)


# A bidder sees (hour, elapsed, segment, remaining budget) and returns (bid, arm label, pacing rate).
Bidder = Callable[[int, float, str, float], tuple[float, str, float]]
# Called at the end of each hour with that hour's aggregate rows.
OnBlock = Callable[[int, list[ArmStats]], None]


def run_day(
    m: Market,
    camp: Campaign,
    draws: DayDraws,
    bidder: Bidder,
    *,
    budget: float,
    on_block: OnBlock | None = None,
    day: int = 0,
) -> DayResult:
    """One day of second-price auctions for ``camp``, showing its best creative per segment.

    A request is entered with probability ``pacing rate``, the bid is capped at the remaining
    budget, a win costs the market price, a click follows with the true CTR.
    """
    ctr = {s: m.true_ctr(camp.campaign_id, s, m.best_creative(camp.campaign_id, s)) for s in m.segments}
    result = DayResult()
    cells: dict[tuple[str, str], list[float]] = {}
    hour_now = 0

    def flush(h: int) -> None:
        rows = [
            ArmStats(arm=arm, state=state, trials=n, reward_sum=c, reward_sq_sum=c, cost_sum=k, wins=w)
            for (state, arm), (n, c, k, w) in cells.items()
        ]
        cells.clear()
        if on_block is not None:
            on_block(h, rows)

    for i in range(len(draws.hour)):
        h = int(draws.hour[i])
        while h > hour_now:
            flush(hour_now)
            hour_now += 1
        remaining = budget - result.spend
        if remaining <= budget * 1e-3:
            continue  # exhausted, as the simulator does
        s = m.segments[int(draws.segment[i])]
        result.requests += 1
        bid, arm, rate = bidder(h, float(draws.elapsed[i]), s, remaining)
        cell = cells.setdefault((f"{day}|{h}|{s}", arm), [0.0, 0.0, 0.0, 0.0])
        cell[0] += 1
        if draws.u_pace[i] >= rate:
            continue
        bid = min(bid, remaining)
        price = float(draws.price[i])
        if bid < price:
            continue
        result.wins += 1
        cell[3] += 1
        result.spend += price
        result.spend_by_hour[h] += price
        cell[2] += price
        if draws.u_click[i] < ctr[s]:
            result.clicks += 1
            cell[1] += 1
    while hour_now < 24:
        flush(hour_now)
        hour_now += 1
    return result


def window_end(day: int, hour: int) -> int:
    return day * DAY_MS + (hour + 1) * HOUR_MS - 1


def batch_of(rows: list[ArmStats], day: int, hour: int) -> Batch:
    return Batch(tuple(rows), window_end=window_end(day, hour))


# -- experiments shared by the tests and the benchmark's curves ----------------------------------


@dataclass
class CreativeRun:
    regret: np.ndarray  # per impression, summed over keys: best CTR - CTR of the creative shown
    ctr_shown: np.ndarray  # per impression, summed over keys: true CTR of the creative shown
    oracle: np.ndarray  # per impression, summed over keys: best CTR


def creative_experiment(
    m: Market, *, impressions: int, batch: int, grid: int = 256, seed: int = 0
) -> CreativeRun:
    """Thompson sampling per (campaign, segment) over the creatives, updated every ``batch`` impressions."""
    from learners import ThompsonSampling

    regret = np.zeros(impressions)
    shown = np.zeros(impressions)
    oracle = np.zeros(impressions)
    for camp in m.campaigns:
        arms = list(camp.creatives)
        for s, seg in enumerate(m.segments):
            ctr = np.array([m.true_ctr(camp.campaign_id, seg, cr) for cr in arms])
            ts = ThompsonSampling(grid=grid, seed=seed * 1000 + camp.index * 10 + s)
            rng = np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(camp.index, s)))
            u = rng.random(impressions)
            for start in range(0, impressions, batch):
                n = np.zeros(len(arms))
                c = np.zeros(len(arms))
                for k in range(start, min(start + batch, impressions)):
                    j = arms.index(ts.choose(None, arms)[0])
                    n[j] += 1
                    c[j] += u[k] < ctr[j]
                    shown[k] += ctr[j]
                rows = [
                    ArmStats(arm=a, trials=n[j], reward_sum=c[j], reward_sq_sum=c[j])
                    for j, a in enumerate(arms)
                ]
                ts.update(Batch(tuple(r for r in rows if r.trials), window_end=start))
            oracle += ctr.max()
    regret = oracle - shown
    return CreativeRun(regret=regret, ctr_shown=shown, oracle=oracle)


# -- an upper bound for the bid agent: Cai et al.'s RLB with the exact model ---------------------


def rlb_oracle_vs_linear(
    *, auctions: int, budget_ratio: float, ctr_sigma: float, episodes: int = 40, seed: int = 0
) -> tuple[float, float, float]:
    """Expected clicks of the exact-model RLB policy over those of linear bidding, at equal budget.

    The setting of Cai et al. (2017): episodes of ``auctions`` second-price auctions, budget
    ``budget_ratio * auctions * E[price]`` (their c0), i.i.d. requests with a per-request CTR
    ``θ`` (lognormal, spread ``ctr_sigma``, mean 0.01) and an integer market price (lognormal,
    median 15, independent of ``θ``). RLB is the Bellman-optimal policy computed by DP on the
    *true* distributions: ``V(t, b)`` over auctions left and budget left, bid = the largest price
    ``δ`` with ``V(t-1, b) - V(t-1, b-δ) <= θ``, so no learned agent can do better. Linear bids
    ``b0 * θ / θ_avg`` with ``b0`` chosen on ``episodes`` training episodes to maximise clicks under
    the budget. Returns (clicks ratio on as many held-out episodes, RLB spend share, linear spend
    share). Clicks are expected clicks (sum of ``θ`` over wins), so click noise does not blur it.

    >>> ratio, rl_spend, lin_spend = rlb_oracle_vs_linear(
    ...     auctions=300, budget_ratio=1 / 16, ctr_sigma=1.0, episodes=20)
    >>> 1.0 < ratio < 1.10, rl_spend > 0.95
    (True, True)
    """
    rng = np.random.default_rng(seed)
    prices = np.arange(1, 61)
    edges = np.array(
        [0.5 * (1 + math.erf(math.log(x + 0.5 / 15) / (0.5 * math.sqrt(2)))) for x in prices / 15]
    )
    pmf = np.diff(np.concatenate([[0.0], edges]))
    pmf /= pmf.sum()
    budget = round(budget_ratio * auctions * float(pmf @ prices))
    theta_avg = 0.01

    def thetas(*shape: int) -> np.ndarray:
        return theta_avg * np.exp(ctr_sigma * rng.standard_normal(shape) - ctr_sigma**2 / 2)

    # h(g) = E[(θ - g)+]: the expected gain of a win whose budget cost in future value is g.
    sample = np.sort(thetas(200_000))
    grid = np.linspace(0.0, sample[-1], 4000)
    tail = np.concatenate([np.cumsum(sample[::-1])[::-1], [0.0]])
    idx = np.searchsorted(sample, grid)
    h = (tail[idx] - grid * (len(sample) - idx)) / len(sample)
    levels = np.arange(budget + 1)[:, None]
    affordable = prices[None, :] <= levels
    rest = np.clip(levels - prices[None, :], 0, budget)
    value = np.zeros((auctions + 1, budget + 1))
    for t in range(1, auctions + 1):
        v = value[t - 1]
        cost = np.where(affordable, v[:, None] - v[rest], np.inf)  # V(t-1, b) - V(t-1, b - δ)
        value[t] = v + (np.interp(cost, grid, h, right=0.0) @ pmf)

    def run(theta: np.ndarray, price: np.ndarray, b0: np.ndarray | None) -> tuple[float, float]:
        n = theta.shape[0]
        b0s = np.array([0.0]) if b0 is None else b0
        left = np.full((len(b0s), n), budget)
        clicks = np.zeros((len(b0s), n))
        for i in range(auctions):
            if b0 is None:  # RLB: bid the largest price whose future-value cost is below θ
                v = value[auctions - i - 1]
                cost = v[left][..., None] - v[np.maximum(left[..., None] - prices, 0)]
                ok = (cost <= theta[None, :, i, None]) & (prices <= left[..., None])
                bid = ok.sum(-1)  # ok is a prefix of the prices 1, 2, ...: its length is the bid
            else:
                bid = b0s[:, None] * theta[None, :, i] / theta_avg
            win = (price[None, :, i] <= np.minimum(bid, left)) & (price[None, :, i] <= left)
            left = left - np.where(win, price[None, :, i], 0)
            clicks += np.where(win, theta[None, :, i], 0.0)
        return clicks.sum(1), (budget - left).sum(1) / (budget * n)

    draw = lambda: (thetas(episodes, auctions), rng.choice(prices, size=(episodes, auctions), p=pmf))  # noqa: E731
    train, test = draw(), draw()
    b0_grid = np.geomspace(0.5, 200.0, 80)
    b0 = b0_grid[[int(np.argmax(run(*train, b0_grid)[0]))]]
    lin_clicks, lin_spend = run(*test, b0)
    rl_clicks, rl_spend = run(*test, None)
    return float(rl_clicks[0] / lin_clicks[0]), float(rl_spend[0]), float(lin_spend[0])
