"""The sequential test: its interval, its decisions, its level under continuous monitoring."""

from __future__ import annotations

import numpy as np
import pytest

from rollout.sequential import ArmTotals, RolloutSettings, RolloutTest, confidence_sequence

pytestmark = pytest.mark.unit


def _feed(test: RolloutTest, rng: np.random.Generator, rates: tuple, n: tuple[int, int]) -> None:
    """One micro-batch of Bernoulli rewards: ``n`` decisions of the control and the candidate."""
    for arm, rate, count in zip((test.control, test.candidate), rates, n, strict=True):
        clicks = float(rng.binomial(count, rate))
        arm.add(count, clicks, clicks, clicks)


def test_the_interval_narrows_like_sqrt_log_n_over_n_and_is_symmetric():
    widths = [confidence_sequence(0.1, 1.0 / n, 1e-2, 0.05) for n in (100, 10_000, 1_000_000)]
    assert all(lo < 0.1 < hi and abs((hi - 0.1) - (0.1 - lo)) < 1e-12 for lo, hi in widths)
    halves = [hi - 0.1 for _, hi in widths]
    assert halves[0] > halves[1] > halves[2]
    # sqrt(V log(1/V)): 100x the samples narrows it by less than 10x (the price of looking always)
    assert 5 < halves[1] / halves[2] < 10
    with pytest.raises(ValueError, match="variance and tau2"):
        confidence_sequence(0.0, 0.0, 1.0, 0.05)


def test_it_extends_until_both_arms_have_the_minimum_evidence():
    test = RolloutTest(RolloutSettings(min_decisions=200, min_successes=5))
    test.control.add(10_000, 1_000, 1_000, 1_000)
    test.candidate.add(199, 0, 0, 0)  # far worse, but too few decisions yet
    assert test.look().action == "extend" and test.tau2 is None
    test.candidate.add(1, 0, 0, 0)
    decision = test.look()  # no rewarded decision: judged with the control's variance
    assert decision.action == "rollback" and decision.margin_high is not None and decision.margin_high < 0


def test_a_candidate_that_earns_nothing_is_rolled_back_and_one_with_few_rewards_never_promoted():
    test = RolloutTest()
    test.control.add(1_000_000, 30_000, 30_000, 30_000)
    test.candidate.add(200_000, 4, 4, 4)
    assert test.look().action == "rollback"
    lucky = RolloutTest()
    lucky.control.add(10_000, 1, 1, 1)  # the control too earns next to nothing
    lucky.candidate.add(300, 4, 4, 4)
    assert lucky.look().action == "extend"  # the control lacks rewarded decisions: no decision
    lucky.control.add(10_000, 10, 10, 10)
    lucky.candidate.add(0, 0, 0, 0)
    assert lucky.look().action != "promote"  # 4 rewarded decisions: too few to promote


def test_a_clearly_better_candidate_is_promoted_and_a_clearly_worse_one_rolled_back():
    rng = np.random.default_rng(1)
    better, worse = RolloutTest(), RolloutTest()
    actions = {"better": "extend", "worse": "extend"}
    for _ in range(2_000):
        _feed(better, rng, (0.03, 0.045), (900, 100))
        _feed(worse, rng, (0.03, 0.015), (900, 100))
        if actions["better"] == "extend":
            actions["better"] = better.look().action
        if actions["worse"] == "extend":
            actions["worse"] = worse.look().action
    assert actions == {"better": "promote", "worse": "rollback"}


def test_a_candidate_within_the_margin_is_not_rolled_back():
    rng = np.random.default_rng(2)
    test = RolloutTest(RolloutSettings(margin=0.2))
    for _ in range(3_000):
        _feed(test, rng, (0.03, 0.0285), (500, 500))  # 5% worse, the margin is 20%
        assert test.look().action != "rollback"


def test_looking_after_every_batch_keeps_the_false_promotion_rate_below_alpha():
    """A/A: 200 rollouts of equal arms (CTR 3%, candidate share 10%), looked at after every
    micro-batch of 1,000 decisions, 300 looks each. A fixed-n z-test at 5% looked at this often
    promotes in about a third of them; the confidence sequence must stay below alpha."""
    rng = np.random.default_rng(3)
    promoted = naive = 0
    for _ in range(200):
        test = RolloutTest(RolloutSettings(alpha=0.05))
        naive_fired = False
        for _ in range(300):
            _feed(test, rng, (0.03, 0.03), (900, 100))
            decision = test.look()
            k, c = test.control, test.candidate
            if min(k.n, c.n) >= 200:
                z = (c.mean - k.mean) / np.sqrt(k.variance / k.n + c.variance / c.n + 1e-18)
                naive_fired |= z > 1.645
            if decision.action == "promote":
                promoted += 1
                break
        naive += naive_fired
    assert promoted / 200 <= 0.05, promoted
    assert naive / 200 > 0.15, naive  # the check can fail: continuous looks break a fixed-n test


def test_state_round_trips():
    test = RolloutTest()
    test.control.add(1000, 30, 30, 30)
    test.candidate.add(300, 12, 12, 12)
    test.look()
    again = RolloutTest.from_state(test.settings, test.to_state())
    assert again.to_state() == test.to_state() and again.look() == test.look()
    assert ArmTotals(4, 2, 2, 2).variance == pytest.approx(1 / 3)
