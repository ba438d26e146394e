"""Ground truth of a run: the market's hidden parameters, injected noise and attribution inputs.

Tests of the feedback job compare what it learned and attributed with this file:
- ``true_ctr`` / ``best_creative``: what a creative learner should converge to;
- ``noise``: which event ids were re-sent, sent late, and every malformed record with its kind
  (what the dead-letter queue should hold);
- ``conversions``: for every emitted conversion, every touch (impression and click) of the same
  (user, campaign) at most ``lookback_days`` before it, in time order, and what really caused it.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
from pathlib import Path
from typing import Any

from sim.config import DAY_MS, MAX_CONVERSION_DELAY_DAYS
from sim.market import Market
from sim.noise import NoiseLog

LOOKBACK_MS = int(MAX_CONVERSION_DELAY_DAYS * DAY_MS)


class GroundTruth:
    """Filled by the simulator as events reach their event time; export with :meth:`to_dict`."""

    def __init__(self, market: Market, noise: NoiseLog) -> None:
        self.market = market
        self.noise = noise
        self.conversions: list[dict[str, Any]] = []
        self.spend: dict[str, list[float]] = {c.campaign_id: [] for c in market.campaigns}
        self.counts: dict[str, int] = {}
        # (user_id, campaign_id) -> touch times (sorted) and touches, for the lookback search
        self._touch_ts: dict[tuple[str, str], list[int]] = {}
        self._touches: dict[tuple[str, str], list[tuple[str, str, str]]] = {}

    def add_touch(
        self, user_id: str, campaign_id: str, kind: str, touch_id: str, impression_id: str, ts: int
    ) -> None:
        """Record an impression or click; calls come in event-time order."""
        key = (user_id, campaign_id)
        self._touch_ts.setdefault(key, []).append(ts)
        self._touches.setdefault(key, []).append((kind, touch_id, impression_id))

    def add_conversion(self, payload: dict[str, Any], cause: str, cause_impression_id: str | None) -> None:
        """Record an emitted conversion with the touches that preceded it within the lookback."""
        user, campaign, ts = payload["user_id"], payload["campaign_id"], payload["ts"]
        times = self._touch_ts.get((user, campaign), [])
        touches = self._touches.get((user, campaign), [])
        lo, hi = bisect.bisect_left(times, ts - LOOKBACK_MS), bisect.bisect_right(times, ts)
        self.conversions.append(
            {
                "conversion_id": payload["conversion_id"],
                "event_id": payload["event_id"],
                "ts": ts,
                "user_id": user,
                "campaign_id": campaign,
                "value": payload["value"],
                "cause": cause,  # "click", "view" or "organic"
                "cause_impression_id": cause_impression_id,
                "touches": [
                    {
                        "kind": kind,
                        "id": tid,
                        "impression_id": imp,
                        "ts": t,
                        "user_id": user,
                        "campaign_id": campaign,
                    }
                    for t, (kind, tid, imp) in zip(times[lo:hi], touches[lo:hi], strict=True)
                ],
            }
        )

    def to_dict(self) -> dict[str, Any]:
        m = self.market
        return {
            "config": m.config.to_dict(),
            "segments": list(m.segments),
            "campaigns": [dataclasses.asdict(c) for c in m.campaigns],
            "market_price": {
                s: {"mu": float(m.price_mu[i]), "sigma": m.price_sigma} for i, s in enumerate(m.segments)
            },
            "true_ctr": {
                c.campaign_id: {
                    s: {cr: float(m.ctr[c.index, si, j]) for j, cr in enumerate(c.creatives)}
                    for si, s in enumerate(m.segments)
                }
                for c in m.campaigns
            },
            "best_creative": {
                c.campaign_id: {s: m.best_creative(c.campaign_id, s) for s in m.segments} for c in m.campaigns
            },
            "noise": {
                "duplicated": dict(self.noise.duplicated),
                "late": list(self.noise.late),
                "malformed": [dataclasses.asdict(r) for r in self.noise.malformed],
            },
            "lookback_days": MAX_CONVERSION_DELAY_DAYS,
            "conversions": self.conversions,
            "spend_per_day": self.spend,
            "counts": dict(self.counts),
        }

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path
