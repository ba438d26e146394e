"""The controller's shadow estimates from aggregated sums equal learners.ope's from the rows."""

from __future__ import annotations

import numpy as np
import pytest

from learners import ope
from rollout.controller import ShadowTotals

pytestmark = pytest.mark.unit


def test_snips_and_dr_from_sums_equal_the_row_estimators():
    rng = np.random.default_rng(0)
    k, n = 4, 5_000
    logging = np.array([0.55, 0.15, 0.15, 0.15])  # the control's creative probabilities
    candidate = np.array([0.1, 0.7, 0.1, 0.1])  # the shadow's
    ctr = np.array([0.03, 0.05, 0.02, 0.04])
    action = rng.choice(k, size=n, p=logging)
    shadow = rng.choice(k, size=n, p=candidate)
    reward = (rng.random(n) < ctr[action]).astype(float)
    propensity = logging[action]

    totals = ShadowTotals()
    for a in range(k):
        for s in range(k):
            m = (action == a) & (shadow == s)
            matched = a == s
            totals.add(str(a), str(s), float(m.sum()), float(reward[m].sum()),
                       float((1 / propensity[m]).sum()) if matched else 0.0,
                       float((reward[m] / propensity[m]).sum()) if matched else 0.0)  # fmt: skip
    snips, dr = totals.estimates()

    indicator = (shadow == action).astype(float)
    assert snips == pytest.approx(ope.snips(reward, propensity, indicator).value, rel=1e-12)
    q = {a: reward[action == a].mean() for a in range(k)}
    q_logged = np.array([q[a] for a in action])
    q_target = np.array([q[s] for s in shadow])
    expected = ope.doubly_robust(reward, propensity, indicator, q_logged, q_target).value
    assert dr == pytest.approx(expected, rel=1e-12)
    # Both estimate the candidate's CTR, 0.0446 here, from the control's requests alone.
    assert abs(snips - candidate @ ctr) < 0.01 and abs(dr - candidate @ ctr) < 0.01


def test_no_shadow_no_estimate_and_state_round_trips():
    assert ShadowTotals().estimates() == (None, None)
    totals = ShadowTotals()
    totals.add("a", "b", 3, 1, 0, 0)
    assert totals.estimates()[0] is None  # no match: SNIPS has no weight
    assert ShadowTotals.from_state(totals.to_state()) == totals
