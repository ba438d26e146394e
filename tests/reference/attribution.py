"""Independent pure-Python reference of the attribution pipeline, for row-by-row checks of Flink.

Batch semantics over the whole stream, in the order it was written to Kafka:

1. Validation: records that would go to the dead-letter queue (:func:`dead_letters`) are out
   (rules of ``sim.validate``, restated fast in :mod:`tests.reference.validation`).
2. Dedup by ``event_id`` per topic, first arrival wins (and an impression id resent under a new
   event id counts once: first arrival).
3. Late: lateness depends on Flink's periodic watermarks, so it is an input (the event ids of
   Flink's late table). Copies of one event share ``ts`` and the watermark only rises, so the late
   copies of an event are always its last ones: the event is out only when *all* its valid copies
   were late; otherwise its first copy was on time and stays. Pass a list with one id per late row
   to be exact; a set counts each id once (enough for the simulator, which never duplicates a late
   event).
4. Conversions deduplicated by ``conversion_id``, first arrival wins (among the on-time ones).
5. Click attribution, initial rows, touches, credits and delayed rows as in the issue: see
   :func:`reference_rewards`.

The decay formula is written out here on purpose (not imported from ``attribution.credit``) so
the reference stays independent of the code it checks; only the config objects and the reward
weights are shared.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from attribution.config import AttributionConfig, RewardConfig
from contract.events import AUCTIONS, CLICKS, CONVERSIONS, IMPRESSIONS
from sim.noise import SimRecord
from sim.validate import check_record
from tests.reference.validation import parse_valid

SCHEMA_VERSION = 1
KEY_FIELDS = ("decision_id", "kind", "conversion_id")
ROW_FIELDS = (
    "schema_version", "decision_id", "impression_id", "agent", "campaign_id", "segment", "action",
    "propensity", "policy_version", "features", "kind", "conversion_id", "reward", "click", "credit",
    "cost", "conversion_value", "event_ts", "reward_ts",
)  # fmt: skip


class DeadLetter(NamedTuple):
    record: SimRecord
    reason: str


@dataclass(frozen=True, slots=True)
class _Touch:
    ts: int
    click: bool
    impression_id: str


def dead_letters(records: Iterable[SimRecord]) -> list[DeadLetter]:
    """The records the job must send to the DLQ, in stream order, with the validation reason.

    Same rules as the ingest step (``sim.validate``): invalid JSON, contract violations, unknown
    schema version, non-finite or negative money, bad propensity, ``ts`` implausibly far ahead.
    """
    out = []
    for record in records:
        if parse_valid(record) is None:
            # The exact reason (slow) only for the few rejected records.
            out.append(DeadLetter(record, check_record(record) or "breaks the contract (reference rules)"))
    return out


def valid_events(records: Iterable[SimRecord], late_event_ids: Iterable[str]) -> dict[str, list[dict]]:
    """Parsed events per topic after validation, dedup and late exclusion (steps 1-4), in arrival order."""
    late = Counter(late_event_ids)
    copies: Counter[tuple[str, str]] = Counter()
    first: dict[tuple[str, str], dict[str, Any]] = {}  # insertion order = first arrival order
    for record in records:
        event = parse_valid(record)
        if event is None:
            continue
        key = (record.topic, event["event_id"])
        copies[key] += 1
        first.setdefault(key, event)
    by_topic: dict[str, list[dict]] = {IMPRESSIONS: [], CLICKS: [], CONVERSIONS: [], AUCTIONS: []}
    seen_conversions: set[str] = set()
    for (topic, event_id), event in first.items():
        if late[event_id] >= copies[(topic, event_id)]:
            continue  # every valid copy went to the late table
        if topic == CONVERSIONS:
            if event["conversion_id"] in seen_conversions:
                continue
            seen_conversions.add(event["conversion_id"])
        by_topic[topic].append(event)
    return by_topic


def reference_rewards(
    records: Iterable[SimRecord],
    late_event_ids: Iterable[str],
    attribution_cfg: AttributionConfig,
    reward_cfg: RewardConfig,
) -> list[dict[str, Any]]:
    """Every reward row (``ad.rewards`` v1) the job must produce, sorted by (reward_ts, decision_id,
    kind, conversion_id).

    - Counted click of an impression: the click with the smallest (ts, event_id) and
      ``imp.ts <= click.ts <= imp.ts + click_window_ms``.
    - One ``initial`` row per decision: click 0/1, cost = win_price, reward_ts = the click time or
      the window end.
    - Touches: each impression (view, at imp.ts) and its counted click (click, at click.ts), keyed
      by the impression's (user_id, campaign_id); a conversion takes those with
      ``conv.ts - lookback_ms <= touch.ts <= conv.ts``.
    - One ``delayed`` row per decision of each credited impression (view + click credit summed):
      with time decay every touched impression (a 0-value conversion gives 0-credit rows), with
      last touch only the winner. reward_ts = conv.ts.
    """
    events = valid_events(records, late_event_ids)
    impressions: dict[str, dict[str, Any]] = {}
    for imp in events[IMPRESSIONS]:
        # One impression id sent again under a new event_id is a resend: the first arrival wins.
        impressions.setdefault(imp["impression_id"], imp)
    window = attribution_cfg.click_window_ms

    # Counted click per impression: the earliest (ts, event_id) inside [imp.ts, imp.ts + window].
    counted: dict[str, tuple[int, str]] = {}
    for clk in events[CLICKS]:
        target = impressions.get(clk["impression_id"])
        if target is None or not target["ts"] <= clk["ts"] <= target["ts"] + window:
            continue
        candidate = (clk["ts"], clk["event_id"])
        best = counted.get(clk["impression_id"])
        if best is None or candidate < best:
            counted[clk["impression_id"]] = candidate

    rows: list[dict[str, Any]] = []
    touches: dict[tuple[str, str], list[_Touch]] = defaultdict(list)
    for imp_id, imp in impressions.items():
        click_ts = counted[imp_id][0] if imp_id in counted else None
        clicked = click_ts is not None
        reward_ts = click_ts if click_ts is not None else imp["ts"] + window
        cost = float(imp["win_price"])
        outcome = 1.0 if clicked else 0.0
        for decision in imp["decisions"]:
            rows.append(
                _row(imp, decision, reward_cfg, kind="initial", click=outcome, credit=0.0, cost=cost,
                     conversion_id=None, conversion_value=None, reward_ts=reward_ts)
            )  # fmt: skip
        user_campaign = (imp["user_id"], imp["campaign_id"])
        touches[user_campaign].append(_Touch(imp["ts"], False, imp_id))
        if click_ts is not None:
            touches[user_campaign].append(_Touch(click_ts, True, imp_id))
    for found in touches.values():
        found.sort(key=lambda t: t.ts)

    for conv in events[CONVERSIONS]:
        found = touches.get((conv["user_id"], conv["campaign_id"]), [])
        lo = bisect.bisect_left(found, conv["ts"] - attribution_cfg.lookback_ms, key=lambda t: t.ts)
        hi = bisect.bisect_right(found, conv["ts"], key=lambda t: t.ts)
        in_window = found[lo:hi]
        if not in_window:
            continue
        value = float(conv["value"])
        for imp_id, credit in _credit_per_impression(value, conv["ts"], in_window, attribution_cfg).items():
            imp = impressions[imp_id]
            for decision in imp["decisions"]:
                rows.append(
                    _row(imp, decision, reward_cfg, kind="delayed", click=0.0, credit=credit, cost=0.0,
                         conversion_id=conv["conversion_id"], conversion_value=value, reward_ts=conv["ts"])
                )  # fmt: skip
    rows.sort(key=lambda r: (r["reward_ts"], r["decision_id"], r["kind"], r["conversion_id"] or ""))
    return rows


def _credit_per_impression(
    value: float, conv_ts: int, touches: Sequence[_Touch], cfg: AttributionConfig
) -> dict[str, float]:
    """Credit per touched impression (its view and click touches summed)."""
    out: dict[str, float] = {}
    if cfg.model == "last_touch":
        # Latest touch; at equal ts a click beats a view, then the larger impression id.
        last = max(touches, key=lambda t: (t.ts, t.click, t.impression_id))
        out[last.impression_id] = value
        return out
    weights = [
        (cfg.click_boost if t.click else 1.0) * 2.0 ** (-(conv_ts - t.ts) / cfg.half_life_ms) for t in touches
    ]
    total = math.fsum(weights)
    if total == 0.0:
        raise ValueError(
            f"reference: every decay weight underflowed to 0 with half_life_ms={cfg.half_life_ms}"
        )
    for touch, w in zip(touches, weights, strict=True):
        out[touch.impression_id] = out.get(touch.impression_id, 0.0) + value * w / total
    return out


def _row(
    imp: dict[str, Any],
    decision: dict[str, Any],
    reward_cfg: RewardConfig,
    *,
    kind: str,
    click: float,
    credit: float,
    cost: float,
    conversion_id: str | None,
    conversion_value: float | None,
    reward_ts: int,
) -> dict[str, Any]:
    w = reward_cfg.weights(decision["agent"])
    reward = w.click * click + w.credit * credit - w.cost * cost  # written out: see module docstring
    return {
        "schema_version": SCHEMA_VERSION,
        "decision_id": f"{imp['impression_id']}:{decision['agent']}",
        "impression_id": imp["impression_id"],
        "agent": decision["agent"],
        "campaign_id": imp["campaign_id"],
        "segment": imp["segment"],
        "action": decision["action"],
        "propensity": float(decision["propensity"]),
        "policy_version": int(decision["policy_version"]),
        "features": [float(x) for x in imp["features"]],
        "kind": kind,
        "conversion_id": conversion_id,
        "reward": reward,
        "click": click,
        "credit": credit,
        "cost": cost,
        "conversion_value": conversion_value,
        "event_ts": int(imp["ts"]),
        "reward_ts": int(reward_ts),
    }


def row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row.get(k) for k in KEY_FIELDS)


def compare_rows(
    expected: Sequence[dict[str, Any]],
    actual: Sequence[dict[str, Any]],
    rel: float = 1e-9,
    abs_tol: float = 1e-12,
) -> list[str]:
    """Differences between two row sets matched by (decision_id, kind, conversion_id); [] if equal.

    Floats (also inside ``features``) compare at relative ``rel`` and absolute ``abs_tol``; ints
    and floats compare as numbers; every other field compares exactly.
    """
    problems: list[str] = []
    want = _index(expected, "expected", problems)
    got = _index(actual, "actual", problems)
    for key in sorted(want.keys() - got.keys(), key=repr):
        problems.append(f"missing row {key}")
    for key in sorted(got.keys() - want.keys(), key=repr):
        problems.append(f"extra row {key}")
    for key in sorted(want.keys() & got.keys(), key=repr):
        a, b = want[key], got[key]
        for name in sorted(set(a) | set(b)):
            if name not in b:
                problems.append(f"row {key}: field {name!r} missing (expected {a[name]!r})")
            elif name not in a:
                problems.append(f"row {key}: unexpected field {name!r} = {b[name]!r}")
            elif not _same(a[name], b[name], rel, abs_tol):
                problems.append(f"row {key}: {name} expected {a[name]!r}, found {b[name]!r}")
    return problems


def _index(rows: Sequence[dict[str, Any]], side: str, problems: list[str]) -> dict[tuple, dict[str, Any]]:
    out: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = row_key(row)
        if key in out:
            problems.append(f"duplicate {side} row {key}")
        out[key] = row
    return out


def _same(a: Any, b: Any, rel: float, abs_tol: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        return math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y, rel, abs_tol) for x, y in zip(a, b, strict=True))
    return bool(a == b)
