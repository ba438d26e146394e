from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from sim.policies import (
    BID,
    BUDGET,
    CREATIVE,
    Decision,
    FixedPolicy,
    Request,
    ServingPolicy,
    UniformRandomPolicy,
    interpret,
)

REQUEST = Request(
    ts=0,
    campaign_id="c00",
    segment="seg0",
    user_id="u1",
    features=(0.0, 1.0),
    remaining_budget=10.0,
    daily_budget=10.0,
    base_bid=0.2,
    creatives=("c00-cr0", "c00-cr1", "c00-cr2"),
    bid_multipliers=(0.5, 1.0, 1.5, 2.0),
)


def test_policies_satisfy_the_protocol():
    assert isinstance(UniformRandomPolicy(), ServingPolicy)
    assert isinstance(FixedPolicy(), ServingPolicy)


def test_uniform_policy_propensities_are_one_over_n_and_actions_uniform():
    policy = UniformRandomPolicy(seed=3, policy_version=4, pacing_rates=(0.5, 1.0))
    counts: Counter[tuple[str, str]] = Counter()
    n = 12_000
    for _ in range(n):
        decisions = policy.decide(REQUEST)
        by_agent = {d.agent: d for d in decisions}
        assert by_agent[CREATIVE].propensity == pytest.approx(1 / 3)
        assert by_agent[BID].propensity == pytest.approx(1 / 4)
        assert by_agent[BUDGET].propensity == pytest.approx(1 / 2)
        assert {d.policy_version for d in decisions} == {4}
        counts.update((d.agent, d.action) for d in decisions)
    for cr in REQUEST.creatives:
        assert abs(counts[(CREATIVE, cr)] / n - 1 / 3) < 0.02
    assert {a for (agent, a) in counts if agent == BID} == {"0.5", "1", "1.5", "2"}


def test_uniform_policy_is_deterministic_under_a_seed():
    a, b = UniformRandomPolicy(seed=9), UniformRandomPolicy(seed=9)
    assert [a.decide(REQUEST) for _ in range(50)] == [b.decide(REQUEST) for _ in range(50)]


def test_interpret_reads_actions():
    served = interpret(REQUEST, [Decision(CREATIVE, "c00-cr1", 1.0, 0), Decision(BID, "1.5", 0.25, 0)], "p")
    assert (served.creative_id, served.bid_multiplier, served.pacing_rate) == ("c00-cr1", 1.5, 1.0)
    assert (
        interpret(
            REQUEST, [Decision(CREATIVE, "c00-cr0", 1.0, 0), Decision(BUDGET, "0", 1.0, 0)], "p"
        ).pacing_rate
        == 0
    )


@pytest.mark.parametrize(
    ("decisions", "fragment"),
    [
        ([Decision(BID, "1", 1.0, 0)], "creative must be one of"),
        ([Decision(CREATIVE, "c01-cr0", 1.0, 0)], "creative must be one of"),
        ([Decision(CREATIVE, "c00-cr0", 0.0, 0)], "propensity of creative must be in (0, 1], found 0.0"),
        ([Decision(CREATIVE, "c00-cr0", 1.2, 0)], "propensity of creative must be in (0, 1]"),
        ([Decision(CREATIVE, "c00-cr0", 1.0, -1)], "policy_version must be an int >= 0"),
        (
            [Decision(CREATIVE, "c00-cr0", 1.0, 0), Decision(BID, "-1", 1.0, 0)],
            "bid action must be a number in (0, inf]",
        ),
        ([Decision(CREATIVE, "c00-cr0", 1.0, 0), Decision(BID, "x", 1.0, 0)], "bid action must be a number"),
        (
            [Decision(CREATIVE, "c00-cr0", 1.0, 0), Decision(BUDGET, "1.5", 1.0, 0)],
            "budget action must be a number in [0, 1]",
        ),
        (
            [Decision(CREATIVE, "c00-cr0", 1.0, 0), Decision(CREATIVE, "c00-cr0", 1.0, 0)],
            "one decision per agent",
        ),
        ([Decision("pacer", "1", 1.0, 0)], "one decision per agent"),
    ],
)
def test_interpret_rejects_bad_decisions_naming_the_policy(decisions, fragment):
    with pytest.raises(ValueError) as err:
        interpret(REQUEST, decisions, FixedPolicy())
    assert str(err.value).startswith("policy FixedPolicy: ") and fragment in str(err.value)


def test_fixed_policy_uses_its_table_with_propensity_one():
    policy = FixedPolicy({("c00", "seg0"): "c00-cr2"}, bid_multiplier=2.0, policy_version=7)
    decisions = policy.decide(REQUEST)
    assert [(d.agent, d.action, d.propensity, d.policy_version) for d in decisions] == [
        (CREATIVE, "c00-cr2", 1.0, 7),
        (BID, "2", 1.0, 7),
    ]
    assert policy.decide(dataclasses.replace(REQUEST, segment="seg1"))[0].action == "c00-cr0"
