"""The simulated ad market: campaigns, creatives with true CTRs, users, prices and conversions.

Everything is drawn once from the config seed, so the same config always builds the same market.
The methods here are the stable, pure interface that bidding and pacing environments build on:
they take a numpy ``Generator`` where they sample and never touch hidden global state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.config import DAY_MS, HOUR_MS, SimConfig

# Independent random streams derived from the one config seed (numpy SeedSequence spawn keys).
STREAM_MARKET, STREAM_TRAFFIC, STREAM_NOISE, STREAM_AUCTION_NOISE, STREAM_DRIFT, STREAM_SEGMENT = range(6)


def rng_stream(seed: int, stream: int) -> np.random.Generator:
    """The generator of one named stream of a run; streams never share draws."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(stream,)))


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    index: int
    creatives: tuple[str, ...]
    daily_budget: float
    base_bid: float  # expected value of one impression under a uniform creative choice
    conv_prob_click: float  # P(conversion | click)
    conv_prob_view: float  # P(conversion | impression without click)
    conv_value_mean: float
    traffic_share: float  # share of auction requests that are for this campaign


class Market:
    """A deterministic market built from a :class:`SimConfig`.

    >>> m = Market(SimConfig(n_users=100))
    >>> [m.best_creative("c00", s) for s in m.segments]
    ['c00-cr0', 'c00-cr1', 'c00-cr2', 'c00-cr3']
    >>> 0.005 <= m.true_ctr("c00", "seg1", "c00-cr1") <= 0.08
    True
    """

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        rng = rng_stream(config.seed, STREAM_MARKET)
        n_seg, n_cr = config.n_segments, config.creatives_per_campaign
        self.segments: tuple[str, ...] = tuple(f"seg{i}" for i in range(n_seg))
        self._segment_index = {s: i for i, s in enumerate(self.segments)}

        # Market price per segment: lognormal(mu, sigma) with a drawn median.
        lo, hi = config.market_price_median_range
        self.price_mu = np.log(rng.uniform(lo, hi, n_seg))
        self.price_sigma = config.market_price_sigma

        # Users: one segment each, skewed activity so some come back far more often.
        seg_share = rng.dirichlet(np.full(n_seg, 5.0))
        self.user_segment = rng.choice(n_seg, size=config.n_users, p=seg_share)
        activity = rng.lognormal(0.0, config.user_activity_sigma, config.n_users)
        self._user_cdf = np.cumsum(activity / activity.sum())
        centroids = rng.normal(0.0, 1.0, (n_seg, config.feature_dim - 2))
        noise = rng.normal(0.0, config.user_vector_noise, (config.n_users, config.feature_dim - 2))
        self.user_vectors = (centroids[self.user_segment] + noise).astype(np.float32)

        # Conversion value factor per segment (its own stream: the other draws stay as they were).
        spread = np.log(config.segment_value_spread)
        levels = np.linspace(-spread / 2, spread / 2, n_seg) if n_seg > 1 else np.zeros(1)
        self.segment_value = np.exp(rng_stream(config.seed, STREAM_SEGMENT).permutation(levels))

        # True CTR table [campaign, segment, creative].
        self.ctr = np.empty((config.n_campaigns, n_seg, n_cr))
        for c in range(config.n_campaigns):
            for s in range(n_seg):
                self.ctr[c, s] = self._ctr_row(rng, c, s)

        campaigns = []
        traffic = rng.uniform(0.5, 1.5, config.n_campaigns)
        traffic /= traffic.sum()
        for c in range(config.n_campaigns):
            cid = f"c{c:02d}"
            p_click = float(rng.uniform(*config.conv_prob_click_range))
            p_view = p_click * config.view_conversion_ratio
            value = round(float(rng.uniform(*config.conv_value_range)), 2)
            ctr = self.ctr[c]  # [segment, creative]
            factor = self.segment_value[:, None]
            campaigns.append(
                Campaign(
                    campaign_id=cid,
                    index=c,
                    creatives=tuple(f"{cid}-cr{j}" for j in range(n_cr)),
                    daily_budget=round(float(rng.uniform(*config.daily_budget_range)), 2),
                    base_bid=round(value * float((factor * (ctr * p_click + (1 - ctr) * p_view)).mean()), 6),
                    conv_prob_click=p_click,
                    conv_prob_view=p_view,
                    conv_value_mean=value,
                    traffic_share=float(traffic[c]),
                )
            )
        self.campaigns: tuple[Campaign, ...] = tuple(campaigns)
        self._campaign = {c.campaign_id: c for c in self.campaigns}
        self._creative_index = {cr: j for c in self.campaigns for j, cr in enumerate(c.creatives)}
        self._campaign_cdf = np.cumsum(traffic)

    def _ctr_row(self, rng: np.random.Generator, c: int, s: int) -> np.ndarray:
        """CTRs of one campaign's creatives in one segment, with a clear winner.

        Ranks are geometrically spaced from the best (upper half of the range) to the worst
        (near the floor), so neighbouring ranks differ by a learnable factor. The best creative
        is ``(s + c) mod n``, so it differs between segments whenever there are two or more.
        """
        lo, hi = self.config.ctr_range
        n = self.config.creatives_per_campaign
        best = rng.uniform(0.6, 1.0) * hi
        worst = min(rng.uniform(1.0, 1.5) * lo, best / 1.5)
        ranks = best * (worst / best) ** (np.arange(n) / max(n - 1, 1))
        ranks[1:] *= rng.uniform(0.92, 1.0, n - 1)
        order = np.empty(n, dtype=int)
        order[0] = (s + c) % n
        order[1:] = rng.permutation([j for j in range(n) if j != order[0]])
        row = np.empty(n)
        row[order] = np.maximum(ranks, lo)
        return row

    # -- lookups ---------------------------------------------------------------------------

    def campaign(self, campaign_id: str) -> Campaign:
        try:
            return self._campaign[campaign_id]
        except KeyError:
            raise ValueError(
                f"unknown campaign_id {campaign_id!r}; expected one of {list(self._campaign)}"
            ) from None

    def segment_index(self, segment: str) -> int:
        try:
            return self._segment_index[segment]
        except KeyError:
            raise ValueError(f"unknown segment {segment!r}; expected one of {list(self.segments)}") from None

    def creative_index(self, campaign_id: str, creative_id: str) -> int:
        j = self._creative_index.get(creative_id)
        if j is None or self.campaign(campaign_id).creatives[j] != creative_id:
            raise ValueError(f"creative {creative_id!r} does not belong to campaign {campaign_id!r}")
        return j

    @staticmethod
    def user_id(index: int) -> str:
        return f"u{index:07d}"

    def true_segment(self, user_id: str) -> int:
        """The index of a user's true segment (what serving nodes never see; logs may carry another
        label, the segment agent's).

        >>> m = Market(SimConfig(n_users=100))
        >>> bool(m.true_segment(m.user_id(5)) == m.user_segment[5])
        True
        """
        return int(self.user_segment[int(user_id[1:])])

    # -- clicks ----------------------------------------------------------------------------

    def true_ctr(self, campaign_id: str, segment: str, creative_id: str) -> float:
        """P(click | impression) of a creative shown to a user of ``segment``."""
        c = self.campaign(campaign_id).index
        return float(self.ctr[c, self.segment_index(segment), self.creative_index(campaign_id, creative_id)])

    def best_creative(self, campaign_id: str, segment: str) -> str:
        """The creative with the highest true CTR for this campaign and segment."""
        camp = self.campaign(campaign_id)
        return camp.creatives[int(np.argmax(self.ctr[camp.index, self.segment_index(segment)]))]

    def best_creatives(self) -> dict[tuple[str, str], str]:
        """The best creative of every (campaign_id, segment): an oracle creative policy."""
        return {
            (c.campaign_id, s): self.best_creative(c.campaign_id, s)
            for c in self.campaigns
            for s in self.segments
        }

    def sample_click_delay_ms(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Click delays after the impression: lognormal, median ``click_delay_median_s``, truncated."""
        cfg = self.config
        return _truncated_lognormal(
            rng, math.log(cfg.click_delay_median_s * 1000), 1.0, cfg.click_delay_max_s * 1000, size
        )

    # -- auction ---------------------------------------------------------------------------

    def sample_market_price(self, rng: np.random.Generator, segment: str) -> float:
        """The highest competing bid for one request of ``segment``: the price paid on a win."""
        return float(rng.lognormal(self.price_mu[self.segment_index(segment)], self.price_sigma))

    def sample_market_prices(self, rng: np.random.Generator, segment_indices: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`sample_market_price` over an array of segment indices."""
        mu = self.price_mu[np.asarray(segment_indices)]
        return np.exp(mu + self.price_sigma * rng.standard_normal(mu.shape))

    def win_probability(self, segment: str, bid: float) -> float:
        """P(market price <= bid): the chance a bid wins the second-price auction."""
        if bid <= 0:
            return 0.0
        z = (math.log(bid) - self.price_mu[self.segment_index(segment)]) / self.price_sigma
        return _phi(z)

    def expected_cost(self, segment: str, bid: float) -> float:
        """E[price * 1{price <= bid}]: expected spend of one request at ``bid`` (lognormal closed form)."""
        if bid <= 0:
            return 0.0
        mu, sigma = float(self.price_mu[self.segment_index(segment)]), self.price_sigma
        return math.exp(mu + sigma**2 / 2) * _phi((math.log(bid) - mu - sigma**2) / sigma)

    # -- conversions -----------------------------------------------------------------------

    def conversion_probability(self, campaign_id: str, clicked: bool) -> float:
        """P(conversion) following an impression that was clicked, or only viewed."""
        camp = self.campaign(campaign_id)
        return camp.conv_prob_click if clicked else camp.conv_prob_view

    def conversion_value_mean(self, campaign_id: str) -> float:
        return self.campaign(campaign_id).conv_value_mean

    def sample_conversion_value(self, rng: np.random.Generator, campaign_id: str) -> float:
        """One conversion value with no segment (an organic one): the campaign mean times a
        mean-one lognormal factor, in cents."""
        return _value(self.conversion_value_mean(campaign_id), rng.lognormal(-0.125, 0.5))

    def sample_conversion_values(
        self,
        rng: np.random.Generator,
        campaign_indices: np.ndarray,
        segment_indices: np.ndarray | None = None,
    ) -> np.ndarray:
        """Conversion values of a campaign, times the segment's value factor when segments are given."""
        means = np.array([c.conv_value_mean for c in self.campaigns])[np.asarray(campaign_indices)]
        if segment_indices is not None:
            means = means * self.segment_value[np.asarray(segment_indices)]
        return np.maximum(np.round(means * rng.lognormal(-0.125, 0.5, means.shape), 2), 0.01)

    def high_value(self, users: np.ndarray) -> np.ndarray:
        """Ground truth of the segment agent: whether each user's segment is worth more than the
        typical one (its conversion value factor above one).

        >>> m = Market(SimConfig(n_users=100, n_segments=4))
        >>> int(m.high_value(np.arange(100)).sum()) in range(1, 100)
        True
        """
        return self.segment_value[self.user_segment[np.asarray(users)]] > 1.0

    def sample_conversion_delay_ms(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Conversion delays after the touch: lognormal (long tail), truncated at ``conv_delay_max_days``."""
        cfg = self.config
        median_ms = cfg.conv_delay_median_h * HOUR_MS
        return _truncated_lognormal(
            rng, math.log(median_ms), cfg.conv_delay_sigma, cfg.conv_delay_max_days * DAY_MS, size
        )

    def expected_value(self, campaign_id: str, segment: str, creative_id: str) -> float:
        """Expected conversion value of one impression (click and view-through paths)."""
        camp = self.campaign(campaign_id)
        ctr = self.true_ctr(campaign_id, segment, creative_id)
        value = camp.conv_value_mean * self.segment_value[self.segment_index(segment)]
        return value * (ctr * camp.conv_prob_click + (1 - ctr) * camp.conv_prob_view)

    # -- traffic ---------------------------------------------------------------------------

    def sample_campaigns(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Campaign indices of ``size`` auction requests, by traffic share."""
        return np.minimum(np.searchsorted(self._campaign_cdf, rng.random(size)), len(self.campaigns) - 1)

    def sample_users(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """User indices of ``size`` requests; active users come back more often."""
        return np.minimum(np.searchsorted(self._user_cdf, rng.random(size)), self.config.n_users - 1)

    def features(self, users: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Context vectors: hour-of-day (sin, cos) then the user's vector (informative of segment)."""
        angle = (np.asarray(ts) % DAY_MS) * (2 * math.pi / DAY_MS)
        clock = np.stack([np.sin(angle), np.cos(angle)], axis=1)
        return np.round(np.hstack([clock, self.user_vectors[np.asarray(users)]]), 4)


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _value(mean: float, factor: float) -> float:
    return max(round(mean * factor, 2), 0.01)


def _truncated_lognormal(
    rng: np.random.Generator, mu: float, sigma: float, cap: float, size: int
) -> np.ndarray:
    """Lognormal draws redrawn until they fall at or below ``cap``; integer ms, at least 1."""
    out = rng.lognormal(mu, sigma, size)
    bad = out > cap
    for _ in range(50):  # the config keeps the median below the cap, so this ends quickly
        if not bad.any():
            break
        out[bad] = rng.lognormal(mu, sigma, int(bad.sum()))
        bad = out > cap
    return np.maximum(np.minimum(out, cap).astype(np.int64), 1)
