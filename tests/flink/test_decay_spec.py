"""One decay spec: the job's Java credit math (udf/.../DecayCredits.java) agrees with the
reference, ``attribution.credit.time_decay_credits``, on random inputs, old touches included."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution.credit import Touch, time_decay_credits

DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def java_credits():
    """``DecayCredits.credits`` of the job's jar, called in the PyFlink JVM."""
    from pyflink.java_gateway import get_gateway
    from pyflink.util.java_utils import add_jars_to_context_class_loader

    from jobs.runtime import jar_dir

    add_jars_to_context_class_loader([(jar_dir() / "adloop-udf.jar").as_uri()])
    gateway = get_gateway()
    decay = gateway.jvm.adloop.udf.DecayCredits

    def call(value: float, ages: list[int], clicks: list[bool], half_life_ms: int, boost: float) -> list:
        j_ages = gateway.new_array(gateway.jvm.long, len(ages))
        j_clicks = gateway.new_array(gateway.jvm.boolean, len(clicks))
        for i, (age, click) in enumerate(zip(ages, clicks, strict=True)):
            j_ages[i] = age
            j_clicks[i] = click
        return list(decay.credits(float(value), j_ages, j_clicks, half_life_ms, float(boost)))

    return call


touches = st.lists(
    st.tuples(st.integers(min_value=0, max_value=60 * DAY_MS), st.booleans()), min_size=1, max_size=25
)


@settings(max_examples=300, deadline=None)
@given(
    value=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    touches=touches,
    half_life_ms=st.one_of(st.integers(1, 1_000), st.integers(1, 30 * DAY_MS)),
    boost=st.floats(min_value=0.01, max_value=100),
)
def test_java_and_python_decay_credits_agree(java_credits, value, touches, half_life_ms, boost):
    ages = [age for age, _ in touches]
    clicks = [click for _, click in touches]
    reference = time_decay_credits(
        value,
        [Touch(f"i{i}", age, click) for i, (age, click) in enumerate(touches)],
        half_life_ms=half_life_ms,
        click_boost=boost,
    )
    got = java_credits(value, ages, clicks, half_life_ms, boost)
    assert all(math.isfinite(c) and c >= 0 for c in got)
    for java, python in zip(got, reference, strict=True):
        assert java == pytest.approx(python, rel=1e-9, abs=1e-12 * max(value, 1.0))


def test_touches_ten_thousand_half_lives_old_share_the_value(java_credits):
    # With 2^(-age/half_life) in plain floating point every weight is 0 and the credit NaN.
    got = java_credits(3.0, [10_000_000, 10_001_000], [False, False], 1_000, 2.0)
    assert got == pytest.approx([2.0, 1.0], rel=1e-12)
