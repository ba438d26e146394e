"""The pure-Python reference attribution on small hand-made streams (arrival order = list order)."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from attribution import AttributionConfig, RewardConfig
from contract.events import CLICKS, CONVERSIONS, IMPRESSIONS, schema
from sim.config import SimConfig
from sim.noise import SimRecord, encode
from sim.simulator import Simulator
from sim.validate import check_record
from tests.reference.attribution import compare_rows, dead_letters, reference_rewards
from tests.reference.validation import is_valid

T0 = 1_735_689_600_000
HOUR = 3_600_000
DAY = 86_400_000
ATTR = AttributionConfig()
REWARDS = RewardConfig()
AGENTS = ("creative", "bid", "budget")


def imp(imp_id: str, ts: int, *, user: str = "u1", campaign: str = "c1", win_price: float = 0.2,
        event_id: str | None = None, agents: tuple[str, ...] = AGENTS) -> SimRecord:  # fmt: skip
    payload = {
        "schema_version": 1, "event_id": event_id or f"e-{imp_id}", "impression_id": imp_id, "ts": ts,
        "user_id": user, "campaign_id": campaign, "segment": "seg0", "creative_id": f"{campaign}-cr0",
        "bid_price": 0.5, "win_price": win_price, "features": [1.0, 0.5],
        "decisions": [
            {"agent": a, "action": f"{a}-a", "propensity": 0.25, "policy_version": 3} for a in agents
        ],
    }  # fmt: skip
    return _record(IMPRESSIONS, imp_id, payload)


def click(event_id: str, imp_id: str, ts: int) -> SimRecord:
    payload = {"schema_version": 1, "event_id": event_id, "impression_id": imp_id, "ts": ts}
    return _record(CLICKS, imp_id, payload)


def conv(
    event_id: str, conv_id: str, ts: int, value: float, *, user: str = "u1", campaign: str = "c1"
) -> SimRecord:
    payload = {
        "schema_version": 1, "event_id": event_id, "conversion_id": conv_id, "ts": ts,
        "user_id": user, "campaign_id": campaign, "value": value,
    }  # fmt: skip
    return _record(CONVERSIONS, conv_id, payload)


def _record(topic: str, key: str, payload: dict[str, Any], **flags: Any) -> SimRecord:
    return SimRecord(topic, key.encode(), encode(payload), payload["ts"], payload["ts"], **flags)


def rows_of(records, late=(), attr=ATTR, rewards=REWARDS, kind=None):
    rows = reference_rewards(records, set(late), attr, rewards)
    return [r for r in rows if kind is None or r["kind"] == kind]


def by_agent(rows):
    return {r["agent"]: r for r in rows}


def delayed_credit(rows) -> dict[tuple[str, str], float]:
    """credit per (conversion_id, impression_id), checked equal across the impression's agents."""
    out: dict[tuple[str, str], float] = {}
    for r in rows:
        key = (r["conversion_id"], r["impression_id"])
        assert out.setdefault(key, r["credit"]) == r["credit"]
    return out


# -- click attribution -----------------------------------------------------------------------


def test_a_click_inside_the_window_gives_click_1_at_the_click_time():
    rows = by_agent(rows_of([imp("i1", T0, win_price=0.2), click("k1", "i1", T0 + 600_000)]))
    assert set(rows) == set(AGENTS)
    creative, bid, budget = rows["creative"], rows["bid"], rows["budget"]
    assert creative["click"] == 1.0 and creative["reward_ts"] == T0 + 600_000
    assert (creative["reward"], bid["reward"], budget["reward"]) == pytest.approx((1.0, 0.8, -0.2))
    assert creative == {
        "schema_version": 1, "decision_id": "i1:creative", "impression_id": "i1", "agent": "creative",
        "campaign_id": "c1", "segment": "seg0", "action": "creative-a", "propensity": 0.25,
        "policy_version": 3, "features": [1.0, 0.5], "kind": "initial", "conversion_id": None,
        "reward": 1.0, "click": 1.0, "credit": 0.0, "cost": 0.2, "conversion_value": None,
        "event_ts": T0, "reward_ts": T0 + 600_000,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("click_ts", "clicked"),
    [(T0, True), (T0 + HOUR, True), (T0 + HOUR + 1, False), (T0 - 1, False)],
    ids=["at-impression", "at-window-end", "after-window", "before-impression"],
)
def test_click_window_edges(click_ts, clicked):
    rows = rows_of([imp("i1", T0), click("k1", "i1", click_ts)])
    assert len(rows) == 3 and all(r["kind"] == "initial" for r in rows)
    for r in rows:
        assert r["click"] == (1.0 if clicked else 0.0)
        assert r["reward_ts"] == (click_ts if clicked else T0 + HOUR)


def test_an_impression_without_click_is_a_zero_outcome_at_the_window_end():
    rows = by_agent(rows_of([imp("i1", T0, win_price=0.3)]))
    assert rows["creative"]["reward"] == 0.0 and rows["creative"]["reward_ts"] == T0 + HOUR
    assert rows["bid"]["reward"] == pytest.approx(-0.3) and rows["bid"]["cost"] == 0.3


def test_only_the_earliest_click_counts_even_when_it_arrives_second():
    records = [imp("i1", T0), click("k2", "i1", T0 + 900_000), click("k1", "i1", T0 + 300_000)]
    rows = rows_of(records)
    assert len(rows) == 3
    assert {r["reward_ts"] for r in rows} == {T0 + 300_000}
    assert {r["click"] for r in rows} == {1.0}


def test_a_click_on_an_unknown_impression_gives_nothing():
    assert rows_of([click("k1", "nope", T0)]) == []


# -- dedup, late, dead letters ---------------------------------------------------------------


def test_duplicates_count_once_and_the_first_arrival_wins():
    records = [
        imp("i1", T0, win_price=0.2),
        imp("i1", T0, win_price=0.9),  # same event_id, different bytes: the first copy wins
        click("k1", "i1", T0 + 60_000),
        click("k1", "i1", T0 + 60_000),
        imp("i2", T0 + 1000, event_id="e-i2b"),  # new impression for the conversion below
        conv("v1", "cv1", T0 + DAY, 10.0),
        conv("v1", "cv1", T0 + DAY, 10.0),  # same event
        conv("v2", "cv1", T0 + DAY, 99.0),  # another event, same conversion: dropped
    ]
    initial = rows_of(records, kind="initial")
    assert len(initial) == 6
    assert by_agent([r for r in initial if r["impression_id"] == "i1"])["bid"]["cost"] == 0.2
    delayed = rows_of(records, kind="delayed")
    assert {r["conversion_value"] for r in delayed} == {10.0}
    assert math.fsum(delayed_credit(delayed).values()) == pytest.approx(10.0, rel=1e-12)


def test_late_records_are_excluded():
    records = [
        imp("i1", T0),
        click("k1", "i1", T0 + 60_000),
        imp("i2", T0),
        conv("v1", "cv1", T0 + HOUR, 5.0),
    ]
    rows = rows_of(records, late={"k1", "e-i2"})
    assert {r["impression_id"] for r in rows} == {"i1"}
    assert {r["click"] for r in rows if r["kind"] == "initial"} == {0.0}  # the late click does not count
    # The conversion still credits i1's view touch (i2 is gone, i1's click too).
    assert delayed_credit(rows_of(records, late={"k1", "e-i2"}, kind="delayed")) == {("cv1", "i1"): 5.0}
    assert rows_of(records, late={"v1"}, kind="delayed") == []


def test_a_late_duplicate_of_an_on_time_event_does_not_remove_it():
    records = [imp("i1", T0), imp("i1", T0)]  # the second copy went to the late table
    assert len(rows_of(records, late={"e-i1"})) == 3
    # ... but when every copy was late (one late-table row per copy), the event is out.
    assert reference_rewards(records, ["e-i1", "e-i1"], ATTR, REWARDS) == []


def test_bad_records_go_to_the_dead_letters_and_valid_ones_still_produce_rewards():
    good = imp("i1", T0)
    broken = SimRecord(IMPRESSIONS, b"i9", good.value[:40], T0, T0, malformed="invalid_json")
    future = imp("i8", T0 + 400 * DAY)
    future = SimRecord(future.topic, future.key, future.value, T0, T0, malformed="future_ts")
    negative = conv("v9", "cv9", T0, -1.0)
    records = [good, broken, future, negative]
    dead = dead_letters(records)
    assert [d.record for d in dead] == [broken, future, negative]
    assert dead[0].reason.startswith("invalid JSON")
    assert "after the plausible limit" in dead[1].reason
    assert "value" in dead[2].reason
    assert {r["impression_id"] for r in rows_of(records)} == {"i1"}


# -- conversion attribution ------------------------------------------------------------------


def _view_and_click_scenario():
    """i1 at T0 clicked at T0 (view and click touch, age 7 d); i2 viewed at the conversion time.

    Weights (half-life 7 d, click boost 2): view i1 = 0.5, click i1 = 2 * 0.5 = 1, view i2 = 1;
    sum 2.5. Credit of 10: i1 = 10 * 1.5 / 2.5 = 6, i2 = 10 * 1 / 2.5 = 4.
    """
    conv_ts = T0 + 7 * DAY
    return [
        imp("i1", T0),
        click("k1", "i1", T0),
        imp("i2", conv_ts),
        imp("i3", conv_ts, campaign="c2"),  # another campaign: not a touch
        imp("i4", conv_ts, user="u2"),  # another user: not a touch
        conv("v1", "cv1", conv_ts, 10.0),
    ]


def test_a_conversion_with_view_and_click_touches_gets_time_decay_credits():
    delayed = rows_of(_view_and_click_scenario(), kind="delayed")
    assert delayed_credit(delayed) == {
        ("cv1", "i1"): pytest.approx(6.0, rel=1e-12),
        ("cv1", "i2"): pytest.approx(4.0, rel=1e-12),
    }
    assert len(delayed) == 6  # one row per decision of each credited impression
    i1 = by_agent([r for r in delayed if r["impression_id"] == "i1"])
    for agent, r in i1.items():
        assert (r["click"], r["cost"], r["conversion_value"]) == (0.0, 0.0, 10.0)
        assert (r["event_ts"], r["reward_ts"]) == (T0, T0 + 7 * DAY)
        assert r["reward"] == pytest.approx(REWARDS.weights(agent).credit * 6.0, rel=1e-12)
    assert i1["creative"]["decision_id"] == "i1:creative"


def test_last_touch_gives_the_whole_value_to_the_latest_touch():
    delayed = rows_of(_view_and_click_scenario(), attr=AttributionConfig(model="last_touch"), kind="delayed")
    assert delayed_credit(delayed) == {("cv1", "i2"): 10.0}


def test_last_touch_ties_prefer_a_click_then_the_larger_impression_id():
    last = AttributionConfig(model="last_touch")
    records = [
        imp("i1", T0),
        imp("i2", T0 + 60_000),
        click("k1", "i1", T0 + 60_000),
        conv("v1", "cv1", T0 + HOUR, 3.0),
    ]
    assert delayed_credit(rows_of(records, attr=last, kind="delayed")) == {("cv1", "i1"): 3.0}
    records = [imp("i1", T0), imp("i2", T0), conv("v1", "cv1", T0 + HOUR, 3.0)]
    assert delayed_credit(rows_of(records, attr=last, kind="delayed")) == {("cv1", "i2"): 3.0}


def test_lookback_edges_are_inclusive_and_later_touches_do_not_count():
    conv_ts = T0 + 30 * DAY
    records = [
        imp("i-edge", conv_ts - 30 * DAY),
        imp("i-old", conv_ts - 30 * DAY - 1),
        imp("i-now", conv_ts),
        imp("i-after", conv_ts + 1),
        conv("v1", "cv1", conv_ts, 1.0),
    ]
    credit = delayed_credit(rows_of(records, kind="delayed"))
    assert set(credit) == {("cv1", "i-edge"), ("cv1", "i-now")}
    # Weights 2^(-30/7) and 1.
    w = 2.0 ** (-30 / 7)
    assert credit[("cv1", "i-edge")] == pytest.approx(w / (1 + w), rel=1e-12)


def test_a_click_outside_the_window_is_no_touch():
    conv_ts = T0 + 2 * HOUR
    records = [imp("i1", T0), click("k1", "i1", T0 + HOUR + 1), conv("v1", "cv1", conv_ts, 2.0)]
    assert delayed_credit(rows_of(records, kind="delayed")) == {("cv1", "i1"): 2.0}
    assert {r["click"] for r in rows_of(records, kind="initial")} == {0.0}


def test_a_conversion_without_touches_produces_no_rows():
    records = [imp("i1", T0, user="u2"), conv("v1", "cv1", T0 + HOUR, 7.0)]
    assert rows_of(records, kind="delayed") == []
    assert rows_of([conv("v1", "cv1", T0, 7.0)]) == []


def test_agents_missing_from_an_impression_get_no_rows():
    rows = rows_of([imp("i1", T0, agents=("creative",)), conv("v1", "cv1", T0 + 1, 1.0)])
    assert {(r["agent"], r["kind"]) for r in rows} == {("creative", "initial"), ("creative", "delayed")}


# -- comparison helper -----------------------------------------------------------------------


def test_compare_rows_reports_missing_extra_and_mismatches_with_tolerance():
    expected = rows_of(_view_and_click_scenario())
    assert compare_rows(expected, list(reversed(expected))) == []
    nudged = [dict(r) for r in expected]
    nudged[0]["credit"] = nudged[0]["credit"] * (1 + 1e-12)
    assert compare_rows(expected, nudged) == []
    nudged[0]["reward"] = nudged[0]["reward"] + 1e-3
    nudged[1]["features"] = [1.0, 0.6]
    problems = compare_rows(expected, nudged[:-1] + [{**nudged[-1], "conversion_id": "zz"}])
    key = (expected[0]["decision_id"], expected[0]["kind"], expected[0]["conversion_id"])
    assert f"row {key}: reward expected" in "\n".join(problems)
    assert any("features expected [1.0, 0.5], found [1.0, 0.6]" in p for p in problems)
    assert any(p.startswith("missing row") for p in problems)
    assert any(p.startswith("extra row") and "'zz'" in p for p in problems)


@pytest.mark.parametrize(
    "change",
    [
        {"ts": float(T0)},  # JSON Schema counts 5.0 as an integer
        {"ts": True},
        {"schema_version": True},
        {"schema_version": 1.0},
        {"win_price": 0},
        {"features": []},
        {"features": [1, "2"]},
        {"decisions": []},
        {"decisions": [{"agent": "bid", "action": "x", "propensity": 1, "policy_version": 0}]},
        {"decisions": [{"agent": "bid", "action": "x", "propensity": 0.5, "policy_version": 0.5}]},
        {"decisions": [{"agent": "pacing", "action": "x", "propensity": 0.5, "policy_version": 0}]},
        {"decisions": [{"agent": "bid", "action": "", "propensity": 0.5, "policy_version": 0}]},
        {"segment": ""},
        {"extra": 1},
    ],
)
def test_the_fast_validation_agrees_on_edge_cases(change):
    payload = json.loads(imp("i1", T0).value)
    payload.update(change)
    record = SimRecord(IMPRESSIONS, b"i1", encode(payload), T0, T0)
    assert is_valid(record) == (check_record(record) is None)


# -- on simulator streams --------------------------------------------------------------------


@pytest.fixture(scope="module")
def noisy_stream():
    config = SimConfig(days=2, n_users=300, requests_per_day=3000, duplicate_rate=0.05, late_rate=0.02,
                       malformed_rate=0.05, seed=11)  # fmt: skip
    sim = Simulator(config)
    records = list(sim.records())
    return records, set(sim.noise_log.late)


def test_the_fast_validation_agrees_with_the_contract_check(noisy_stream):
    records, _ = noisy_stream
    verdicts = [(r, check_record(r)) for r in records]
    assert [(r, why) for r, why in verdicts if is_valid(r) != (why is None)] == []
    assert {d.record.malformed for d in dead_letters(records)} >= {"invalid_json", "future_ts", "nan_money"}
    assert all(d.record.malformed is not None for d in dead_letters(records))


def test_reference_rows_on_a_simulated_stream_keep_the_reward_contract(noisy_stream):
    records, late = noisy_stream
    rows = reference_rewards(records, late, ATTR, REWARDS)
    validator = Draft202012Validator(schema("ad.rewards"))
    sample = [r for r in rows if r["kind"] == "delayed"] + rows[::10]  # jsonschema is slow
    assert [e.message for r in sample for e in validator.iter_errors(r)][:3] == []
    keys = [(r["decision_id"], r["kind"], r["conversion_id"]) for r in rows]
    assert len(keys) == len(set(keys))
    per_conversion: dict[str, float] = defaultdict(float)
    values = {}
    for r in rows:
        if r["kind"] == "delayed" and r["agent"] == "creative":
            per_conversion[r["conversion_id"]] += r["credit"]
            values[r["conversion_id"]] = r["conversion_value"]
    assert per_conversion, "the stream should attribute some conversions"
    for conv_id, total in per_conversion.items():
        assert total == pytest.approx(values[conv_id], rel=1e-9)
    assert any(r["click"] == 1.0 for r in rows)


def test_an_impression_resent_under_a_new_event_id_counts_once():
    records = [imp("i1", T0, win_price=0.2), imp("i1", T0, win_price=0.7, event_id="e-i1-again")]
    rows = rows_of(records)
    assert len(rows) == 3 and {r["cost"] for r in rows} == {0.2}
