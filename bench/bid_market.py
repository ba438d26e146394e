"""The bid agent against linear bidding, in a drifting and in a stationary market.

Offline, on the simulator (no Kafka, no Flink: the learner is the job's ``BidAgent``, fed the
micro-batch statistics the job would give it, an hour at a time). Each campaign serves its best
creative and enters every request; only the bid differs:

- **linear**: ``k * base_bid`` with one ``k`` per campaign from a grid. *Tuned on the training
  days* picks each campaign's ``k`` with the most clicks on the first ``--train-days`` days (what
  a bidder fitted on past data does); *tuned on the test days* picks it on the days it is scored
  on (the best a fixed linear bidder can do there: the optimum in a stationary market);
- **agent**: one ``BidAgent`` per campaign with its daily budget, learning online from the first
  hour: exploring (``epsilon`` 0.1) on the training days, then ``epsilon`` 0.01.

Both are scored on the last ``--test-days`` days: clicks (by the impression's day) and spend.
Budgets cap every bidder: the simulator stops a campaign for the day once less than 0.1% of
its budget is left, so no bidder ever spends over its budget.

Markets (``SimConfig``, seed 7 by default, no noise): **drifting**, ``price_drift_daily = 0.3``
(each day's competitor price level uniform in ±30%) and ``price_drift_intraday = 0.2`` (±20%
within the day, a random phase per day); **stationary**, no drift.

Targets: drifting, agent ≥ 1.10× the clicks of linear tuned on the training days, at no more
spend; stationary, agent ≥ 0.97× the clicks of linear tuned on the test days.

    python -m bench.bid_market [--seed 7] [--out bench/results/bid_market.md]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contract.events import AUCTIONS, CLICKS, IMPRESSIONS
from learners import BidAgent
from learners.batch import Batch
from learners.campaigns import CampaignTable
from scripts import demo
from sim.config import DAY_MS, SimConfig
from sim.market import Market
from sim.noise import SimRecord
from sim.policies import BID, CREATIVE, Decision, Request, format_multiplier
from sim.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent
LINEAR_GRID = tuple(round(float(k), 2) for k in np.arange(0.3, 1.55, 0.1))
TRAIN_EPSILON, TEST_EPSILON = 0.1, 0.01  # the agents' exploration on the training and the test days
AGENT_MULTIPLIERS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5)
DRIFT = {"price_drift_daily": 0.3, "price_drift_intraday": 0.2}
QUIET = {"duplicate_rate": 0.0, "late_rate": 0.0, "malformed_rate": 0.0, "out_of_order_ms": 0}


def market_config(seed: int, days: int, drift: bool) -> SimConfig:
    return SimConfig(
        seed=seed, days=days, bid_multipliers=AGENT_MULTIPLIERS, **QUIET, **(DRIFT if drift else {})
    )


@dataclass
class Outcome:
    clicks: dict[str, list[int]]  # per campaign, per day (by the impression's day)
    spend: dict[str, list[float]]  # per campaign, per day


def _best_creatives(market: Market) -> dict[str, str]:
    return demo.best_by_campaign(demo.campaign_ctrs(market, demo.segment_traffic(market)))


class _Counter:
    """Clicks per campaign and day of the impression, from the records as they arrive."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.clicks: dict[str, list[int]] = {c.campaign_id: [0] * cfg.days for c in Market(cfg).campaigns}
        self.impressions: dict[str, tuple[str, int, str, str]] = {}  # id -> campaign, day, state, arm

    def add(self, records: Iterable[SimRecord]) -> list[tuple[str, str, str]]:
        """Count; return the (campaign, state, arm) of each click's impression."""
        clicked = []
        for r in records:
            if r.topic == IMPRESSIONS:
                imp = json.loads(r.value)
                day = (imp["ts"] - self.cfg.start_ms) // DAY_MS
                arm = next((d["action"] for d in imp["decisions"] if d["agent"] == BID), "")
                self.impressions[imp["impression_id"]] = (imp["campaign_id"], day, _state(imp), arm)
            elif r.topic == CLICKS:
                campaign, day, state, arm = self.impressions[json.loads(r.value)["impression_id"]]
                if day < self.cfg.days:
                    self.clicks[campaign][day] += 1
                    clicked.append((campaign, state, arm))
        return clicked


_TABLE = CampaignTable()


def _state(event: dict[str, Any]) -> str:
    """The agents' state key of an event, as the job's micro-batches make it."""
    return _TABLE.agent_state(event["ts"], event["segment"])


class LinearBidder:
    """Best creative, every request entered, ``k * base_bid`` (propensity 1)."""

    def __init__(self, creatives: dict[str, str], k: dict[str, float]) -> None:
        self.creatives, self.k = creatives, k

    def decide(self, request: Request) -> list[Decision]:
        c = request.campaign_id
        return [
            Decision(CREATIVE, self.creatives[c], 1.0, 0),
            Decision(BID, format_multiplier(self.k[c]), 1.0, 0),
        ]


class AgentBidder:
    """Best creative, every request entered, the multiplier a campaign's ``BidAgent`` chooses."""

    def __init__(self, market: Market, creatives: dict[str, str], epsilon: float) -> None:
        self.creatives = creatives
        self.arms = [format_multiplier(m) for m in AGENT_MULTIPLIERS]
        self.agents = {
            c.campaign_id: BidAgent(self.arms, c.daily_budget, epsilon=epsilon, max_bid=10.0, seed=c.index)
            for c in market.campaigns
        }

    def decide(self, request: Request) -> list[Decision]:
        c = request.campaign_id
        context = {
            "time_block": _TABLE.time_block(request.ts),
            "segment": request.segment,
            "remaining_budget": request.remaining_budget,
        }
        arm, p = self.agents[c].choose(context, self.arms)
        return [Decision(CREATIVE, self.creatives[c], 1.0, 0), Decision(BID, str(arm), p, 0)]

    def learn(self, records: list[SimRecord], clicked: list[tuple[str, str, str]], window_end: int) -> None:
        """One micro-batch per campaign: the hour's auction requests and clicks, as the job sums them."""
        rows: dict[str, dict[tuple[str, str], dict[str, float]]] = defaultdict(dict)
        for r in records:
            if r.topic != AUCTIONS:
                continue
            a = json.loads(r.value)
            for d in a["decisions"]:
                if d["agent"] != BID:
                    continue
                row = rows[a["campaign_id"]].setdefault(
                    (_state(a), d["action"]), {"trials": 0.0, "wins": 0.0, "cost_sum": 0.0, "reward_sum": 0.0}
                )
                row["trials"] += 1
                row["wins"] += a["won"]
                row["cost_sum"] += a.get("clearing_price", 0.0) if a["won"] else 0.0
        for campaign, state, arm in clicked:
            row = rows[campaign].setdefault(
                (state, arm), {"trials": 0.0, "wins": 0.0, "cost_sum": 0.0, "reward_sum": 0.0}
            )
            row["reward_sum"] += 1.0
        for campaign, cells in rows.items():
            batch = Batch.from_rows(
                [{"state": s, "arm": arm, **sums} for (s, arm), sums in cells.items()], window_end=window_end
            )
            self.agents[campaign].update(batch)


def run(cfg: SimConfig, policy: Any) -> Outcome:
    sim = Simulator(cfg, policy=policy)
    counter = _Counter(cfg)
    for chunk in sim.run():
        counter.add(chunk.records)
    return Outcome(
        {k: list(v) for k, v in counter.clicks.items()}, {c: list(v) for c, v in sim.truth.spend.items()}
    )


def linear_outcomes(cfg: SimConfig, creatives: dict[str, str]) -> dict[float, Outcome]:
    campaigns = list(creatives)
    return {k: run(cfg, LinearBidder(creatives, dict.fromkeys(campaigns, k))) for k in LINEAR_GRID}


def tuned(outcomes: dict[float, Outcome], days: slice) -> dict[str, float]:
    """Each campaign's ``k`` with the most clicks over ``days`` (ties: the lower ``k``)."""
    campaigns = next(iter(outcomes.values())).clicks.keys()
    return {c: max(sorted(outcomes), key=lambda k: (sum(outcomes[k].clicks[c][days]), -k)) for c in campaigns}


def score(outcomes: dict[float, Outcome], k: dict[str, float], days: slice) -> tuple[int, float]:
    """Clicks and spend over ``days`` of the linear bidder with ``k`` per campaign (campaigns are
    independent: each has its own budget, and the requests do not depend on the bids)."""
    clicks = sum(sum(outcomes[k[c]].clicks[c][days]) for c in k)
    spend = sum(sum(outcomes[k[c]].spend[c][days]) for c in k)
    return clicks, spend


def daily_hindsight(outcomes: dict[float, Outcome], days: slice) -> tuple[int, float]:
    """Clicks and spend over ``days`` of linear bidding re-tuned for each campaign and each day in
    hindsight: the most any policy that fixes its bid level per day can get, an upper bound on
    what adapting to the day-to-day drift is worth."""
    campaigns = next(iter(outcomes.values())).clicks.keys()
    clicks, spend = 0, 0.0
    for c in campaigns:
        for d in range(days.start, days.stop):
            best = max(sorted(outcomes), key=lambda k: (outcomes[k].clicks[c][d], -k))
            clicks += outcomes[best].clicks[c][d]
            spend += outcomes[best].spend[c][d]
    return clicks, spend


def agent_outcome(cfg: SimConfig, creatives: dict[str, str], train_days: int) -> Outcome:
    market = Market(cfg)
    bidder = AgentBidder(market, creatives, epsilon=TRAIN_EPSILON)
    sim = Simulator(cfg, policy=bidder)
    counter = _Counter(cfg)
    for chunk in sim.run():
        clicked = counter.add(chunk.records)
        bidder.learn(chunk.records, clicked, chunk.end_ms)
        if chunk.end_ms == cfg.start_ms + train_days * DAY_MS:
            for agent in bidder.agents.values():
                agent.epsilon = TEST_EPSILON
    return Outcome(
        {k: list(v) for k, v in counter.clicks.items()}, {c: list(v) for c, v in sim.truth.spend.items()}
    )


def compare(seed: int, train_days: int, test_days: int, drift: bool) -> dict[str, Any]:
    cfg = market_config(seed, train_days + test_days, drift)
    creatives = _best_creatives(Market(cfg))
    train, test = slice(0, train_days), slice(train_days, train_days + test_days)
    started = time.monotonic()
    linear = linear_outcomes(cfg, creatives)
    k_train, k_test = tuned(linear, train), tuned(linear, test)
    agent = agent_outcome(cfg, creatives, train_days)
    agent_clicks = sum(sum(v[test]) for v in agent.clicks.values())
    agent_spend = sum(sum(v[test]) for v in agent.spend.values())
    budget = sum(c.daily_budget for c in Market(cfg).campaigns) * test_days
    over = [
        (c, d)
        for c in agent.spend
        for d, s in enumerate(agent.spend[c])
        if s > Market(cfg).campaign(c).daily_budget
    ]
    return {
        "drift": drift,
        "seed": seed,
        "linear_train": score(linear, k_train, test),
        "linear_test": score(linear, k_test, test),
        "linear_daily": daily_hindsight(linear, test),
        "agent": (agent_clicks, agent_spend),
        "budget": budget,
        "days_over_budget": len(over),
        "k_train": k_train,
        "k_test": k_test,
        "seconds": time.monotonic() - started,
    }


def render(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "# Bid agent vs linear bidding (`python -m bench.bid_market`)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')} UTC, {platform.machine()}, Python {platform.python_version()}. "
        f"Seed {args.seed}, {args.train_days} training days, {args.test_days} test days, "
        f"default `SimConfig` market (10 campaigns, 20,000 requests a day, budgets 100–300), no noise. "
        f"Drifting: `{DRIFT}`. Linear grid `{list(LINEAR_GRID)}`; "
        f"agent multipliers `{list(AGENT_MULTIPLIERS)}`. "
        "Clicks and spend over the test days; deterministic (one run per market).",
        "",
        "| market | agent clicks | linear (train-tuned) | linear (test-tuned) | agent ÷ train-tuned "
        "| agent ÷ test-tuned | linear re-tuned per day (hindsight) "
        "| spend: agent / train-tuned / test-tuned / budget | days over budget | target | met |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        (ac, asp), (tc, tsp), (oc, osp) = r["agent"], r["linear_train"], r["linear_test"]
        if r["drift"]:
            target, ratio = "agent ≥ 1.10 × train-tuned, at no more spend", ac / tc
            met = ratio >= 1.10 and asp <= tsp * 1.001 and r["days_over_budget"] == 0
        else:
            target, ratio = "agent ≥ 0.97 × test-tuned", ac / oc
            met = ratio >= 0.97 and r["days_over_budget"] == 0
        lines.append(
            f"| {'drifting' if r['drift'] else 'stationary'} | {ac:,} | {tc:,} | {oc:,} | {ac / tc:.3f} "
            f"| {ac / oc:.3f} | {r['linear_daily'][0]:,} ({r['linear_daily'][0] / tc:.3f} × train-tuned) "
            f"| {asp:,.0f} / {tsp:,.0f} / {osp:,.0f} / {r['budget']:,.0f} "
            f"| {r['days_over_budget']} | {target} "
            f"| {'yes' if met else 'no'} |"
        )
    lines += ["", "Linear `k` per campaign (train-tuned / test-tuned):", ""]
    for r in results:
        pairs = ", ".join(f"{c} {r['k_train'][c]}/{r['k_test'][c]}" for c in sorted(r["k_train"]))
        lines.append(f"- {'drifting' if r['drift'] else 'stationary'}: {pairs}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bid_market", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--train-days", type=int, default=7)
    parser.add_argument("--test-days", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "bid_market.md")
    args = parser.parse_args(argv)
    results = []
    for drift in (True, False):
        print(
            f"[bid_market] {'drifting' if drift else 'stationary'} market, seed {args.seed} ...", flush=True
        )
        r = compare(args.seed, args.train_days, args.test_days, drift)
        (ac, asp), (tc, tsp), (oc, osp) = r["agent"], r["linear_train"], r["linear_test"]
        print(
            f"[bid_market]   agent {ac} clicks (spend {asp:.0f}); linear train-tuned {tc} ({tsp:.0f}), "
            f"test-tuned {oc} ({osp:.0f}), re-tuned per day {r['linear_daily'][0]}; "
            f"agent / train-tuned {ac / tc:.3f}, / test-tuned {ac / oc:.3f}; "
            f"{r['seconds']:.0f} s",
            flush=True,
        )
        results.append(r)
    text = render(results, args)
    args.out.write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
