"""Policy record codec: exact round-trips and clear errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from learners import LinUCB, ThompsonSampling
from learners.batch import Batch
from state.codec import SCHEMA_VERSION, Notification, PolicyRecord, decode_record, encode_record
from state.keys import KeyLayout, parse_stream_id

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@given(
    params=st.dictionaries(st.text(max_size=6), json_values, max_size=6),
    version=st.integers(0, 2**53 - 1),
    campaign=st.text(min_size=1, max_size=12),
    updated_at=st.integers(0, 2**45),
)
def test_round_trip_is_exact(params: dict, version: int, campaign: str, updated_at: int) -> None:
    rec = PolicyRecord(campaign, "creative", version, "UCB", SCHEMA_VERSION, params, updated_at)
    text = encode_record(rec)
    assert decode_record(text) == rec
    assert decode_record(text.encode()) == rec
    # compact separators (ids and keys may themselves hold ", " or ": ")
    assert text == json.dumps(json.loads(text), separators=(",", ":"))


def test_round_trip_of_real_learner_params() -> None:
    ts = ThompsonSampling(seed=1)
    ts.update(Batch.from_rows([{"arm": "a", "trials": 10, "reward_sum": 3}, {"arm": 7, "trials": 5}]))
    lin = LinUCB(["x", "y"], seed=1)
    for learner in (ts, lin):
        rec = PolicyRecord.from_params("c01", "creative", learner.to_params(), updated_at_ms=5)
        back = decode_record(encode_record(rec))
        assert back == rec
        assert (back.version, back.learner) == (learner.version, type(learner).__name__)
        assert type(learner).from_params(back.params, seed=1).to_params() == learner.to_params()


def test_unknown_schema_version_is_named() -> None:
    rec = PolicyRecord("c01", "bid", 1, "UCB", SCHEMA_VERSION, {}, 0)
    doc = json.loads(encode_record(rec)) | {"schema": 99}
    with pytest.raises(ValueError, match="unknown policy record schema version 99; expected 1"):
        decode_record(json.dumps(doc))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object; got list"),
        (json.dumps({"schema": 1, "campaign": "c"}), "missing"),
        (b"\xff\xfe", "invalid JSON"),
    ],
)
def test_malformed_records_are_value_errors(text: str | bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_record(text)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"agent": "a:b"}, "agent must not contain ':'"),
        ({"campaign_id": ""}, "campaign_id must be a non-empty string"),
        ({"version": -1}, r"version must be an int in \[0, 9007199254740991\]; got -1"),
        ({"version": 2**53}, "version must be an int"),
        ({"version": True}, "version must be an int"),
        ({"params": []}, "params must be a dict; got list"),
    ],
)
def test_invalid_records_are_refused(kwargs: dict, message: str) -> None:
    fields = {
        "campaign_id": "c01",
        "agent": "creative",
        "version": 1,
        "learner": "UCB",
        "schema_version": 1,
        "params": {},
        "updated_at_ms": 0,
    }
    with pytest.raises(ValueError, match=message):
        PolicyRecord(**(fields | kwargs))


def test_non_json_params_are_refused_on_encode() -> None:
    rec = PolicyRecord("c01", "creative", 1, "UCB", 1, {"x": float("nan")}, 0)
    with pytest.raises(ValueError, match="params must be JSON-safe"):
        encode_record(rec)


def test_from_params_needs_a_version() -> None:
    with pytest.raises(ValueError, match=r"params\['version'\] must be an int"):
        PolicyRecord.from_params("c01", "creative", {"learner": "UCB"}, updated_at_ms=0)


def test_notification_fields_round_trip() -> None:
    note = Notification("c01", "bid", 12, 1_700_000_000_000)
    raw = {k.encode(): v.encode() for k, v in note.fields().items()}  # as redis-py returns them
    assert Notification.from_fields(raw) == note
    assert json.loads(note.to_json()) == {
        "campaign": "c01",
        "agent": "bid",
        "version": 12,
        "updated_at": 1_700_000_000_000,
    }
    with pytest.raises(ValueError, match="expected campaign, agent, version and updated_at"):
        Notification.from_fields({"campaign": "c01", "version": "x"})


def test_key_layout() -> None:
    keys = KeyLayout("ad{1}")
    assert keys.policy("c:1", "bid") == "ad{1}:policy:c:1:bid"
    assert keys.stream == keys.channel == "ad{1}:policy-updates"
    assert keys.scan_pattern("c?[x]") == r"ad{1}:policy:c\?\[x\]:*"
    with pytest.raises(ValueError, match="prefix must be a non-empty string"):
        KeyLayout("")
    assert parse_stream_id("5-0") < parse_stream_id("5-1") < parse_stream_id("10-0")
    with pytest.raises(ValueError, match="expected '<ms>-<seq>'"):
        parse_stream_id("5")


def test_a_republished_record_names_its_source_and_round_trips() -> None:
    rec = PolicyRecord(
        "c01", "creative", 9, "UCB", 1, {"learner": "UCB"}, 5, republished_from=3, rolled_back_from=8
    )
    doc = json.loads(encode_record(rec))
    assert (doc["republished_from"], doc["rolled_back_from"]) == (3, 8)
    assert decode_record(encode_record(rec)) == rec
    plain = PolicyRecord("c01", "creative", 9, "UCB", 1, {"learner": "UCB"}, 5)
    assert "republished_from" not in json.loads(encode_record(plain))
    with pytest.raises(ValueError, match="rolled_back_from must be an int"):
        PolicyRecord("c01", "creative", 9, "UCB", 1, {}, 5, rolled_back_from=-1)


def test_a_rollout_notification_says_so_and_a_policy_one_stays_as_it_was() -> None:
    note = Notification("c01", "bid", 12, 7, "rollout")
    assert json.loads(note.to_json())["kind"] == "rollout" and note.fields()["kind"] == "rollout"
    assert Notification.from_fields(note.fields()) == note
    assert "kind" not in Notification("c01", "bid", 12, 7).fields()
    assert Notification.from_fields(Notification("c01", "bid", 12, 7).fields()).kind == "policy"


def test_rollout_and_history_keys() -> None:
    keys = KeyLayout("ad")
    assert (keys.history("c", "bid"), keys.control("c", "bid"), keys.rollout("c", "bid")) == (
        "ad:history:c:bid",
        "ad:control:c:bid",
        "ad:rollout:c:bid",
    )
    assert keys.rollout_pattern("c*") == r"ad:rollout:c\*:*"
