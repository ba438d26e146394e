from __future__ import annotations

import dataclasses

import pytest

from sim.config import SimConfig


def test_defaults_are_valid_and_frozen():
    config = SimConfig()
    assert config.end_ms - config.start_ms == 30 * 86_400_000
    assert config.prefix == "s7"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.days = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("duplicate_rate", 1.5, "SimConfig.duplicate_rate: expected a float in [0, 1), found 1.5"),
        ("late_rate", -0.1, "SimConfig.late_rate: expected a float in [0, 1), found -0.1"),
        ("days", 0, "SimConfig.days: expected an int in [1, 3650], found 0"),
        ("days", 2.5, "SimConfig.days: expected an int in [1, 3650], found 2.5"),
        ("n_campaigns", True, "SimConfig.n_campaigns: expected an int"),
        ("out_of_order_ms", -1, "SimConfig.out_of_order_ms: expected an int in [0, inf], found -1"),
        (
            "ctr_range",
            (0.1, 0.05),
            "SimConfig.ctr_range: expected a pair (low, high) with 0 < low <= high <= 0.5",
        ),
        ("bid_multipliers", (), "SimConfig.bid_multipliers: expected a non-empty tuple"),
        ("bid_multipliers", (1.0, 1.0), "SimConfig.bid_multipliers: expected a non-empty tuple of distinct"),
        (
            "conv_delay_max_days",
            31.0,
            "SimConfig.conv_delay_max_days: expected a float in (0, 30], found 31.0",
        ),
        ("malformed_rate", float("nan"), "SimConfig.malformed_rate: expected a float in [0, 1), found nan"),
        ("feature_dim", 1, "SimConfig.feature_dim: expected an int in [2, 10000], found 1"),
        ("id_prefix", "a b", "SimConfig.id_prefix: expected a string without whitespace"),
    ],
)
def test_bad_value_names_key_expected_and_found(key, value, message):
    with pytest.raises(ValueError) as err:
        SimConfig(**{key: value})
    assert str(err.value).startswith(message)


def test_cross_field_checks_name_the_key():
    with pytest.raises(ValueError, match="SimConfig.conv_delay_median_h: expected a median below"):
        SimConfig(conv_delay_median_h=48.0, conv_delay_max_days=1.0)
    with pytest.raises(ValueError, match="SimConfig.click_delay_median_s"):
        SimConfig(click_delay_median_s=100.0, click_delay_max_s=50.0)


def test_from_mapping_parses_strings_from_a_cli_or_environment():
    config = SimConfig.from_mapping(
        {
            "days": "3",
            "duplicate_rate": "0.02",
            "ctr_range": "0.01,0.1",
            "bid_multipliers": [1, 2],
            "id_prefix": "x",
        }
    )
    assert (config.days, config.duplicate_rate, config.ctr_range) == (3, 0.02, (0.01, 0.1))
    assert config.bid_multipliers == (1.0, 2.0)
    assert config.prefix == "x"


def test_from_mapping_rejects_unknown_keys_and_unparsable_values():
    with pytest.raises(ValueError, match="SimConfig: unknown key 'dayz'; expected one of"):
        SimConfig.from_mapping({"dayz": 3})
    with pytest.raises(ValueError, match="SimConfig.days: expected a value of type int, found 'three'"):
        SimConfig.from_mapping({"days": "three"})


def test_overrides_keep_other_values_and_round_trip_through_a_dict():
    base = SimConfig(seed=3, days=2)
    assert base.with_overrides({"late_rate": 0.0}) == dataclasses.replace(base, late_rate=0.0)
    assert SimConfig.from_mapping(base.to_dict()) == base
