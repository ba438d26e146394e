"""The simulator: walks simulated time hour by hour, asks the policy, emits the event stream.

Per simulated hour it draws the auction requests (numpy, vectorised), then for each request in
time order asks the policy, runs the second-price auction against the market price, charges the
budget and schedules the click and conversion, if any. Clean events are released when simulated
time reaches their event time, noise gives each an arrival time, and a chunk holds every record
that arrived during the hour, in arrival order.

Request draws are made before the policy is asked and do not depend on its answers, so two
policies run with the same seed face the same users, prices and click/conversion draws
(common random numbers), which keeps policy comparisons low-variance.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from contract.events import AUCTIONS, CLICKS, CONVERSIONS, CURRENT_VERSION, IMPRESSIONS
from learners.campaigns import CampaignTable
from sim.config import DAY_MS, HOUR_MS, SimConfig
from sim.market import STREAM_AUCTION_NOISE, STREAM_DRIFT, STREAM_NOISE, STREAM_TRAFFIC, Market, rng_stream
from sim.noise import Noise, NoiseLog, SimRecord
from sim.policies import BID, BUDGET, Request, ServingPolicy, UniformRandomPolicy, interpret
from sim.truth import GroundTruth

MICROS = 1_000_000
# A campaign stops for the day once less than this share of its daily budget is left.
EXHAUSTED_SHARE = 0.001
_IMP, _CLICK, _CONV, _AUCTION = 0, 1, 2, 3  # tie order at equal ts: touches before their conversions


@dataclass(frozen=True)
class Chunk:
    """The records that arrived in ``[start_ms, end_ms)`` of simulated time, in arrival order.

    The last chunk of a run holds what arrives after the simulated period (late stragglers).
    """

    index: int
    start_ms: int
    end_ms: int
    records: list[SimRecord]


class Simulator:
    """A seeded run over ``config.days`` simulated days.

    >>> sim = Simulator(SimConfig(days=1, n_users=500, requests_per_day=2000))
    >>> chunks = list(sim.run())
    >>> len(chunks)  # 24 simulated hours, then the stragglers
    25
    >>> records = [r for chunk in chunks for r in chunk.records]
    >>> records[0].topic, records[0].key  # the serving node's log of the first request
    ('ad.auctions', b's7-r1')
    >>> sorted({r.topic for r in records})
    ['ad.auctions', 'ad.clicks', 'ad.conversions', 'ad.impressions']
    >>> all(a.arrival_ms <= b.arrival_ms for a, b in zip(records, records[1:]))
    True
    """

    def __init__(self, config: SimConfig, policy: ServingPolicy | None = None) -> None:
        self.config = config
        self.market = Market(config)
        # Public so a caller may swap the policy between chunks (e.g. a freshly published one).
        self.policy: ServingPolicy = policy if policy is not None else UniformRandomPolicy(seed=config.seed)
        self.noise_log = NoiseLog()
        self.truth = GroundTruth(self.market, self.noise_log)
        self.stats: dict[str, int] = dict.fromkeys(
            ("requests", "exhausted", "throttled", "lost", "won", "clicks", "conversions", "organic"), 0
        )
        self._traffic = rng_stream(config.seed, STREAM_TRAFFIC)
        noise_seed = int(rng_stream(config.seed, STREAM_NOISE).integers(2**63))
        self._noise = Noise(config, random.Random(noise_seed), self.noise_log)
        # Auction records get noise of their own stream, so logging them leaves the other topics'
        # records of a seed as they were.
        auction_seed = int(rng_stream(config.seed, STREAM_AUCTION_NOISE).integers(2**63))
        self._auction_noise = Noise(config, random.Random(auction_seed), self.noise_log, bad_tag="abad")
        self._blocks = CampaignTable(time_blocks=config.time_blocks)  # the agents' blocks of the day
        self._drift = rng_stream(config.seed, STREAM_DRIFT)  # its own stream: no other draw moves
        self._day_drift: tuple[float, float] = (1.0, 0.0)  # today's (price level, phase in hours)
        self._pending: list[tuple[Any, ...]] = []  # heap of clean events by (ts, kind, seq)
        self._arrivals: list[tuple[int, int, SimRecord]] = []  # heap by (arrival_ms, seq)
        self._seq = 0
        self._ids = {"imp": 0, "click": 0, "conv": 0, "req": 0}
        self._emitted = {IMPRESSIONS: 0, CLICKS: 0, CONVERSIONS: 0, AUCTIONS: 0}
        self._spent = [0] * len(self.market.campaigns)  # micros, today
        self._started = False

    # -- public --------------------------------------------------------------------------

    def run(self) -> Iterator[Chunk]:
        """One chunk per simulated hour, then a final chunk of stragglers. Runs once."""
        if self._started:
            raise RuntimeError("Simulator.run: a simulator runs once; build a new one for another run")
        self._started = True
        cfg = self.config
        hours = cfg.days * 24
        for h in range(hours):
            t0 = cfg.start_ms + h * HOUR_MS
            if h % 24 == 0 and h > 0:
                self._close_day()
            self._serve_hour(t0)
            self._release(t0 + HOUR_MS)
            yield Chunk(h, t0, t0 + HOUR_MS, self._drain(t0 + HOUR_MS))
        self._close_day()
        self._finish()
        tail = self._drain(None)
        yield Chunk(hours, cfg.end_ms, max([cfg.end_ms] + [r.arrival_ms + 1 for r in tail]), tail)

    def records(self) -> Iterator[SimRecord]:
        """The whole stream in arrival order."""
        for chunk in self.run():
            yield from chunk.records

    # -- one hour of auctions ------------------------------------------------------------

    def _serve_hour(self, t0: int) -> None:
        cfg, m, rng = self.config, self.market, self._traffic
        hour = (t0 % DAY_MS) // HOUR_MS
        rate = (
            cfg.requests_per_day / 24 * (1 + cfg.diurnal_amplitude * math.sin(2 * math.pi * (hour - 6) / 24))
        )
        n = int(rng.poisson(rate))
        ts = t0 + np.sort(rng.integers(0, HOUR_MS, n))
        camp = m.sample_campaigns(rng, n)
        users = m.sample_users(rng, n)
        seg = m.user_segment[users]
        price = np.maximum(
            np.round(m.sample_market_prices(rng, seg) * self._price_level(hour) * MICROS), 1
        ).astype(np.int64)
        feats = m.features(users, ts).tolist()
        u_pace, u_click, u_conv = rng.random(n), rng.random(n), rng.random(n)
        click_delay = m.sample_click_delay_ms(rng, n)
        conv_delay = m.sample_conversion_delay_ms(rng, n)
        conv_value = m.sample_conversion_values(rng, camp, seg)
        self._organic(t0)

        rows = zip(
            ts.tolist(), camp.tolist(), users.tolist(), seg.tolist(), price.tolist(), feats,
            u_pace.tolist(), u_click.tolist(), u_conv.tolist(),
            click_delay.tolist(), conv_delay.tolist(), conv_value.tolist(),
            strict=True,
        )  # fmt: skip
        for t, c, u, s, p, x, up, uc, uv, dc, dv, value in rows:
            self._auction(t, c, u, s, p, x, up, uc, uv, dc, dv, value)

    def _price_level(self, hour: int) -> float:
        """The competitors' price level this hour (``price_drift_*``; 1 in a stationary market).
        A new day draws its level and phase at its first hour."""
        cfg = self.config
        if hour == 0:
            u, phase = self._drift.uniform(-1.0, 1.0), self._drift.uniform(0.0, 24.0)
            self._day_drift = (1.0 + cfg.price_drift_daily * float(u), float(phase))
        level, phase = self._day_drift
        return level * (1.0 + cfg.price_drift_intraday * math.sin(2 * math.pi * (hour + phase) / 24))

    def _auction(
        self, t: int, c: int, u: int, s: int, price: int, x: list[float],
        u_pace: float, u_click: float, u_conv: float, click_delay: int, conv_delay: int, value: float,
    ) -> None:  # fmt: skip
        """One request: t event time, c/u/s campaign/user/segment index, price in micros, x features,
        u_* the uniform draws deciding pacing, click and conversion, then the drawn delays and value."""
        m, stats = self.market, self.stats
        stats["requests"] += 1
        camp = m.campaigns[c]
        budget = round(camp.daily_budget * MICROS)
        remaining = budget - self._spent[c]
        if remaining < budget * EXHAUSTED_SHARE:
            stats["exhausted"] += 1
            return
        user_id, segment = m.user_id(u), m.segments[s]
        request = Request(
            t, camp.campaign_id, segment, user_id, tuple(x), remaining / MICROS, camp.daily_budget,
            camp.base_bid, camp.creatives, self.config.bid_multipliers, self.config.pacing_rates,
        )  # fmt: skip
        served = interpret(request, self.policy.decide(request), self.policy)
        logged_segment = served.segment or segment  # what the serving node knows of the user
        if u_pace >= served.pacing_rate:
            stats["throttled"] += 1
            self._log_auction(request, logged_segment, served.decisions, 0, None)
            return
        bid = min(math.floor(camp.base_bid * served.bid_multiplier * MICROS), remaining)
        if bid < price:  # second price: win at or above the market price, pay the market price
            stats["lost"] += 1
            self._log_auction(request, logged_segment, served.decisions, bid, None)
            return
        stats["won"] += 1
        self._log_auction(request, logged_segment, served.decisions, bid, price)
        self._spent[c] += price
        n, prefix = self._next("imp"), self.config.prefix
        imp_id = f"{prefix}-i{n}"
        impression = {
            "schema_version": CURRENT_VERSION,
            "event_id": f"{prefix}-ei{n}",
            "impression_id": imp_id,
            "ts": t,
            "user_id": user_id,
            "campaign_id": camp.campaign_id,
            "segment": logged_segment,
            "creative_id": served.creative_id,
            "bid_price": bid / MICROS,
            "win_price": price / MICROS,
            "features": x,
            "decisions": [d.to_json() for d in served.decisions],
        }
        self._schedule(t, _IMP, IMPRESSIONS, imp_id, impression, (user_id, camp.campaign_id))
        touch_ts, cause = t, "view"
        if u_click < m.ctr[c, s, camp.creatives.index(served.creative_id)]:
            stats["clicks"] += 1
            touch_ts, cause = t + click_delay, "click"
            click = {
                "schema_version": CURRENT_VERSION,
                "event_id": f"{prefix}-ek{self._next('click')}",
                "impression_id": imp_id,
                "ts": touch_ts,
            }
            self._schedule(touch_ts, _CLICK, CLICKS, imp_id, click, (user_id, camp.campaign_id))
        p_conv = camp.conv_prob_click if cause == "click" else camp.conv_prob_view
        if u_conv < p_conv:
            stats["conversions"] += 1
            self._conversion(touch_ts + conv_delay, user_id, camp.campaign_id, value, cause, imp_id)

    def _log_auction(self, request: Request, segment: str, decisions, bid: int, price: int | None) -> None:
        """The serving node's ``ad.auctions`` record of a request: its bid (micros; 0 when
        throttled), whether it won and the price paid, and the bid and budget agents' decisions
        (the bid agent's only when the request was entered). Not logged when neither agent acted."""
        acted = [d.to_json() for d in decisions if d.agent == BUDGET or (d.agent == BID and bid > 0)]
        if not acted:
            return
        n, prefix = self._next("req"), self.config.prefix
        record: dict[str, Any] = {
            "schema_version": CURRENT_VERSION,
            "event_id": f"{prefix}-ea{n}",
            "request_id": f"{prefix}-r{n}",
            "ts": request.ts,
            "campaign_id": request.campaign_id,
            "segment": segment,
            "time_block": self._blocks.time_block(request.ts),
            "bid": bid / MICROS,
            "won": int(price is not None),
            "decisions": acted,
        }
        if price is not None:
            record["clearing_price"] = price / MICROS
        self._schedule(request.ts, _AUCTION, AUCTIONS, record["request_id"], record, ())

    def _organic(self, t0: int) -> None:
        """Conversions no touch caused (the user would have bought anyway)."""
        cfg, m, rng = self.config, self.market, self._traffic
        k = int(rng.poisson(cfg.organic_conversions_per_day / 24))
        ts = t0 + rng.integers(0, HOUR_MS, k)
        camps, users = m.sample_campaigns(rng, k), m.sample_users(rng, k)
        values = m.sample_conversion_values(rng, camps)
        for t, c, u, v in zip(ts.tolist(), camps.tolist(), users.tolist(), values.tolist(), strict=True):
            self.stats["organic"] += 1
            self._conversion(t, m.user_id(u), m.campaigns[c].campaign_id, v, "organic", None)

    def _conversion(
        self, t: int, user_id: str, campaign_id: str, value: float, cause: str, imp: str | None
    ) -> None:
        n, prefix = self._next("conv"), self.config.prefix
        conv_id = f"{prefix}-v{n}"
        payload = {
            "schema_version": CURRENT_VERSION,
            "event_id": f"{prefix}-ev{n}",
            "conversion_id": conv_id,
            "ts": t,
            "user_id": user_id,
            "campaign_id": campaign_id,
            "value": value,
        }
        self._schedule(t, _CONV, CONVERSIONS, conv_id, payload, (cause, imp))

    # -- event time -> arrival -----------------------------------------------------------

    def _next(self, counter: str) -> int:
        """The next number of an id series; ids are <prefix>-<tag><n>, unique within a run."""
        self._ids[counter] += 1
        return self._ids[counter]

    def _schedule(
        self, ts: int, kind: int, topic: str, key: str, payload: dict[str, Any], meta: tuple
    ) -> None:
        self._seq += 1
        heapq.heappush(self._pending, (ts, kind, self._seq, topic, key.encode(), payload, meta))

    def _release(self, until: int) -> None:
        """Events whose event time has come: record the truth, add noise, queue by arrival."""
        pending, arrivals = self._pending, self._arrivals
        while pending and pending[0][0] < until:
            ts, kind, _, topic, key, payload, meta = heapq.heappop(pending)
            if kind == _IMP:
                self.truth.add_touch(
                    meta[0], meta[1], "impression", payload["impression_id"], payload["impression_id"], ts
                )
            elif kind == _AUCTION:
                self._emitted[topic] += 1
                for record in self._auction_noise.emit(topic, key, payload, ts):
                    self._seq += 1
                    heapq.heappush(arrivals, (record.arrival_ms, self._seq, record))
                continue
            elif kind == _CLICK:
                self.truth.add_touch(
                    meta[0], meta[1], "click", payload["event_id"], payload["impression_id"], ts
                )
            else:
                self.truth.add_conversion(payload, meta[0], meta[1])
            self._emitted[topic] += 1
            for record in self._noise.emit(topic, key, payload, ts):
                self._seq += 1
                heapq.heappush(arrivals, (record.arrival_ms, self._seq, record))

    def _drain(self, until: int | None) -> list[SimRecord]:
        arrivals, out = self._arrivals, []
        while arrivals and (until is None or arrivals[0][0] < until):
            out.append(heapq.heappop(arrivals)[2])
        return out

    def _close_day(self) -> None:
        """Book today's spend in the truth and give every campaign a fresh daily budget."""
        for camp in self.market.campaigns:
            self.truth.spend[camp.campaign_id].append(self._spent[camp.index] / MICROS)
        self._spent = [0] * len(self.market.campaigns)

    def _finish(self) -> None:
        """Events due after the simulated period never happen inside it: count and drop them."""
        after = {IMPRESSIONS: 0, CLICKS: 0, CONVERSIONS: 0, AUCTIONS: 0}
        for item in self._pending:
            after[item[3]] += 1
        self._pending.clear()
        counts = self.truth.counts
        counts.update(self.stats)
        for topic, n in self._emitted.items():
            counts[f"emitted.{topic}"] = n
            counts[f"after_end.{topic}"] = after[topic]
        counts["duplicates"] = sum(self.noise_log.duplicated.values())
        counts["late"] = len(self.noise_log.late)
        counts["malformed"] = len(self.noise_log.malformed)
