"""Property tests of the decay and credit math."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attribution import AttributionConfig, RewardWeights, Touch, credits, reward
from attribution.credit import decay_weight, last_touch_credits, time_decay_credits

DAY = 86_400_000
LOOKBACK = 30 * DAY

values = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)
positive_values = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False)
half_lives = st.integers(min_value=3_600_000, max_value=60 * DAY)
boosts = st.floats(min_value=0.1, max_value=10.0)
touch = st.builds(
    Touch,
    impression_id=st.sampled_from([f"i{n}" for n in range(6)]),
    age_ms=st.integers(min_value=0, max_value=LOOKBACK),
    click=st.booleans(),
)
touch_lists = st.lists(touch, min_size=1, max_size=12)
models = st.sampled_from(["time_decay", "last_touch"])


@given(value=values, touches=touch_lists, half_life=half_lives, boost=boosts, model=models)
def test_credits_are_non_negative_and_sum_to_the_value(value, touches, half_life, boost, model):
    config = AttributionConfig(half_life_ms=half_life, click_boost=boost, model=model)
    out = credits(value, touches, config)
    assert len(out) == len(touches)
    assert all(c >= 0 for c in out)
    assert math.fsum(out) == pytest.approx(value, rel=1e-9, abs=1e-12)


@given(
    dt=st.integers(min_value=0, max_value=LOOKBACK),
    step=st.integers(min_value=1, max_value=LOOKBACK),
    half_life=half_lives,
)
def test_weights_decrease_with_age_and_halve_every_half_life(dt, step, half_life):
    assert decay_weight(dt + step, half_life) < decay_weight(dt, half_life)
    assert decay_weight(dt + half_life, half_life) == pytest.approx(
        decay_weight(dt, half_life) / 2, rel=1e-12
    )
    assert decay_weight(0, half_life) == 1.0


@given(dt=st.integers(min_value=0, max_value=LOOKBACK), half_life=half_lives, boost=boosts)
def test_boost_scales_the_weight(dt, half_life, boost):
    assert decay_weight(dt, half_life, boost) == pytest.approx(boost * decay_weight(dt, half_life), rel=1e-12)


@given(
    value=positive_values,
    view_age=st.integers(min_value=0, max_value=LOOKBACK),
    click_age=st.integers(min_value=0, max_value=LOOKBACK),
    half_life=half_lives,
    boost=boosts,
)
def test_relative_credit_of_a_click_is_boost_times_the_decay_ratio(
    value, view_age, click_age, half_life, boost
):
    view, click = Touch("i1", view_age), Touch("i2", click_age, click=True)
    got = time_decay_credits(value, [view, click], half_life_ms=half_life, click_boost=boost)
    expected_ratio = boost * 2.0 ** ((view_age - click_age) / half_life)
    assert got[1] == pytest.approx(got[0] * expected_ratio, rel=1e-9)


@given(value=positive_values, age=st.integers(min_value=0, max_value=LOOKBACK), boost=boosts)
def test_a_click_and_a_view_at_the_same_time_split_by_the_boost(value, age, boost):
    got = time_decay_credits(value, [Touch("i1", age), Touch("i1", age, click=True)], click_boost=boost)
    assert got[0] == pytest.approx(value / (1 + boost), rel=1e-9)
    assert got[1] == pytest.approx(value * boost / (1 + boost), rel=1e-9)


@given(value=positive_values, touches=touch_lists)
def test_last_touch_gives_everything_to_the_latest_touch(value, touches):
    out = last_touch_credits(value, touches)
    winners = [i for i, c in enumerate(out) if c != 0.0]
    assert len(winners) == 1 and out[winners[0]] == value
    winner = touches[winners[0]]
    latest = min(t.age_ms for t in touches)
    assert winner.age_ms == latest
    tied = [t for t in touches if t.age_ms == latest]
    if any(t.click for t in tied):
        assert winner.click
    assert winner.impression_id == max(t.impression_id for t in tied if t.click == winner.click)


@given(value=values, touches=touch_lists, model=models, data=st.data())
def test_credits_do_not_depend_on_the_order_of_touches(value, touches, model, data):
    config = AttributionConfig(model=model)
    order = data.draw(st.permutations(range(len(touches))))
    base = credits(value, touches, config)
    shuffled = credits(value, [touches[i] for i in order], config)
    if model == "last_touch":
        # Identical touches may swap which copy wins; the credit per distinct touch is the same.
        totals: dict[Touch, float] = {}
        for t, c in zip(touches, base, strict=True):
            totals[t] = totals.get(t, 0.0) + c
        for t, c in zip([touches[i] for i in order], shuffled, strict=True):
            totals[t] -= c
        assert all(v == pytest.approx(0.0, abs=1e-12) for v in totals.values())
    else:
        assert shuffled == pytest.approx([base[i] for i in order], rel=1e-12)


@given(touches=touch_lists, model=models)
def test_zero_value_gives_zero_credits(touches, model):
    assert credits(0.0, touches, AttributionConfig(model=model)) == [0.0] * len(touches)


def test_credits_survive_ages_of_thousands_of_half_lives():
    out = time_decay_credits(6.0, [Touch("i1", 3000 * DAY), Touch("i2", 3000 * DAY)], half_life_ms=1000)
    assert out == [3.0, 3.0]


def test_no_touches_no_credits():
    assert credits(5.0, [], AttributionConfig()) == []
    assert credits(5.0, [], AttributionConfig(model="last_touch")) == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: decay_weight(-1, DAY), "decay_weight: expected dt_ms >= 0, found -1"),
        (lambda: decay_weight(1, 0), "decay_weight: expected half_life_ms > 0, found 0"),
        (lambda: time_decay_credits(-1.0, [Touch("i", 0)]), "expected a finite conversion value >= 0"),
        (lambda: last_touch_credits(math.nan, [Touch("i", 0)]), "expected a finite conversion value >= 0"),
        (lambda: time_decay_credits(1.0, [Touch("i", -5)]), "age_ms >= 0"),
    ],
)
def test_bad_inputs_are_rejected_with_what_was_expected(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_reward_combines_the_components_with_the_agent_weights():
    bid = RewardWeights(click=2.0, credit=0.5, cost=1.0)
    assert reward(bid, click=1.0, credit=4.0, cost=0.5) == 2.0 + 2.0 - 0.5
    assert reward(RewardWeights(0.0, 1.0, 1.0), click=1.0, credit=0.0, cost=0.0) == 0.0
