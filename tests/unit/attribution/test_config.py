from __future__ import annotations

import dataclasses

import pytest

from attribution import AttributionConfig, RewardConfig, RewardWeights


def test_defaults_follow_the_architecture_and_are_frozen():
    config = AttributionConfig()
    assert (config.click_window_ms, config.lookback_ms, config.half_life_ms) == (
        3_600_000,
        30 * 86_400_000,
        7 * 86_400_000,
    )
    assert (config.click_boost, config.model) == (2.0, "time_decay")
    rewards = RewardConfig()
    assert rewards.weights("creative") == RewardWeights(1.0, 1.0, 0.0)
    assert rewards.weights("bid") == RewardWeights(1.0, 1.0, 1.0)
    assert rewards.weights("budget") == RewardWeights(0.0, 1.0, 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.model = "last_touch"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"click_window_ms": 0},
            "'attribution.click_window_ms': expected an integer > 0 (milliseconds), found 0",
        ),
        ({"lookback_ms": -1}, "'attribution.lookback_ms': expected an integer > 0 (milliseconds), found -1"),
        (
            {"half_life_ms": 1.5},
            "'attribution.half_life_ms': expected an integer > 0 (milliseconds), found 1.5",
        ),
        ({"half_life_ms": True}, "'attribution.half_life_ms': expected an integer > 0"),
        ({"click_boost": 0.0}, "'attribution.click_boost': expected a finite number > 0, found 0.0"),
        ({"click_boost": float("inf")}, "'attribution.click_boost': expected a finite number > 0, found inf"),
        (
            {"model": "linear"},
            "'attribution.model': expected one of ('time_decay', 'last_touch'), found 'linear'",
        ),
    ],
)
def test_attribution_config_names_key_expected_and_found(kwargs, message):
    with pytest.raises(ValueError) as err:
        AttributionConfig(**kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ((1.0, -0.5, 0.0), "'rewards.credit': expected a finite number >= 0, found -0.5"),
        ((float("nan"), 1.0, 0.0), "'rewards.click': expected a finite number >= 0, found nan"),
        ((1.0, 1.0, "1"), "'rewards.cost': expected a finite number >= 0, found '1'"),
    ],
)
def test_reward_weights_name_key_expected_and_found(weights, message):
    with pytest.raises(ValueError) as err:
        RewardWeights(*weights)
    assert message in str(err.value)


def test_from_mapping_parses_strings_and_keeps_defaults():
    config = AttributionConfig.from_mapping(
        {"click_window_ms": "1800000", "click_boost": "3", "model": "last_touch"}
    )
    assert config == AttributionConfig(click_window_ms=1_800_000, click_boost=3.0, model="last_touch")
    rewards = RewardConfig.from_mapping({"bid": {"cost": "0.5"}, "budget": {"click": 0.25}})
    assert rewards.bid == RewardWeights(1.0, 1.0, 0.5)
    assert rewards.budget == RewardWeights(0.25, 1.0, 1.0)
    assert rewards.creative == RewardConfig().creative
    assert AttributionConfig.from_mapping({}) == AttributionConfig()
    assert RewardConfig.from_mapping({}) == RewardConfig()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: AttributionConfig.from_mapping({"window": 5}), "'attribution.window': expected a key among"),
        (
            lambda: AttributionConfig.from_mapping({"lookback_ms": "30d"}),
            "'attribution.lookback_ms': expected an integer, found '30d'",
        ),
        (lambda: AttributionConfig.from_mapping([]), "'attribution': expected a mapping of keys"),
        (lambda: RewardConfig.from_mapping({"pacing": {}}), "'rewards.pacing': expected an agent among"),
        (
            lambda: RewardConfig.from_mapping({"bid": 1.0}),
            "'rewards.bid': expected a mapping of click, credit, cost",
        ),
        (
            lambda: RewardConfig.from_mapping({"bid": {"value": 1}}),
            "'rewards.bid.value': expected a key among",
        ),
        (
            lambda: RewardConfig.from_mapping({"bid": {"cost": "-1"}}),
            "'rewards.bid.cost': expected a finite number >= 0, found -1.0",
        ),
        (
            lambda: RewardConfig().weights("pacing"),
            "'agent': expected one of ('creative', 'bid', 'budget', 'segment'), found 'pacing'",
        ),
    ],
)
def test_from_mapping_errors_name_the_full_key(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)
