from __future__ import annotations

import pytest

from contract.events import CLICKS, CONVERSIONS, IMPRESSIONS, columns, rejection_reason, schema


def _impression(**overrides):
    record = {
        "schema_version": 1,
        "event_id": "e1",
        "impression_id": "i1",
        "ts": 1_000,
        "user_id": "u1",
        "campaign_id": "c1",
        "segment": "s1",
        "creative_id": "cr1",
        "bid_price": 1.2,
        "win_price": 0.8,
        "features": [1.0, 0.5],
        "decisions": [{"agent": "creative", "action": "cr1", "propensity": 0.5, "policy_version": 3}],
    }
    record.update(overrides)
    return record


def test_valid_impression_has_no_reason():
    assert rejection_reason(IMPRESSIONS, _impression()) is None


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"schema_version": 2}, "unknown schema_version 2"),
        ({"win_price": -0.1}, "win_price"),
        ({"win_price": float("nan")}, "non-finite"),
        ({"ts": "yesterday"}, "ts"),
        (
            {"decisions": [{"agent": "bid", "action": "1.0", "propensity": 0.0, "policy_version": 1}]},
            "propensity",
        ),
        (
            {"decisions": [{"agent": "bid", "action": "1.0", "propensity": 1.5, "policy_version": 1}]},
            "propensity",
        ),
    ],
)
def test_bad_impression_names_the_field(overrides, fragment):
    reason = rejection_reason(IMPRESSIONS, _impression(**overrides))
    assert reason is not None and fragment in reason


def test_missing_field_is_named():
    record = _impression()
    del record["user_id"]
    assert "user_id" in rejection_reason(IMPRESSIONS, record)


def test_non_object_is_rejected():
    assert rejection_reason(CLICKS, [1, 2]) == "expected a JSON object, got list"


def test_unknown_schema_file_names_what_exists():
    with pytest.raises(ValueError, match="no schema for topic 'ad.clicks' version 7"):
        schema(CLICKS, 7)


def test_columns_typed_for_sql():
    cols = {c.name: c.sql_type for c in columns(CONVERSIONS)}
    assert cols == {
        "schema_version": "BIGINT",
        "event_id": "STRING",
        "conversion_id": "STRING",
        "ts": "BIGINT",
        "user_id": "STRING",
        "campaign_id": "STRING",
        "value": "DOUBLE",
    }
