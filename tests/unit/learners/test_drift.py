"""The drift detector: quiet on a stationary key (credit included), firing on a drop, the same after
its JSON state round-trips, and blind to a key's first hour."""

from __future__ import annotations

import json
import random

from learners import PerSegment, RiverBandit
from learners.batch import ArmStats, Batch
from learners.drift import DriftGuard, DriftSettings

MINUTE = 60_000


def _batch(rng: random.Random, t_ms: int, ctr: float, n: int = 50, credit: bool = True) -> Batch:
    """``n`` impressions of one minute: clicks at ``ctr``; with ``credit``, conversion credit of
    impressions served earlier (20 to 80 a conversion, 1% of trials), as delayed rows do."""
    clicks = sum(rng.random() < ctr for _ in range(n))
    delayed = sum(rng.uniform(20, 80) for _ in range(n) if rng.random() < 0.01) if credit else 0.0
    row = ArmStats("a", trials=n, reward_sum=clicks, reward_sq_sum=clicks, delayed_sum=delayed)
    return Batch((row,), window_end=t_ms)


def test_a_stationary_key_with_conversion_credit_raises_few_false_alarms() -> None:
    """2,500 pools of 200 trials at 5% CTR, with credit arriving in delayed rows: the detector
    watches initial rewards only, so the credit's arrival does not look like drift."""
    rng = random.Random(1)
    guard = DriftGuard(DriftSettings())
    fired = sum(guard.observe(_batch(rng, i * MINUTE, 0.05)) for i in range(10_000))
    assert fired <= 5, fired


def test_a_drop_fires_within_a_few_pools_and_state_round_trips_change_nothing() -> None:
    """The same stream into one guard kept in memory and into one saved to JSON and restored before
    every batch, as the job's operator does: the same decisions, and a drop from 10% to 2% CTR
    found within 3 pools (600 trials, 12 batches)."""
    rng = random.Random(2)
    batches = [_batch(rng, i * MINUTE, 0.10 if i < 600 else 0.02, credit=False) for i in range(700)]
    settings = DriftSettings()
    kept = DriftGuard(settings)
    state = None
    in_memory, restored = [], []
    for b in batches:
        in_memory.append(kept.observe(b))
        guard = DriftGuard.from_state(settings, json.loads(json.dumps(state)) if state else None)
        restored.append(guard.observe(b))
        state = guard.to_state()
    assert in_memory == restored
    fired = [i for i, f in enumerate(in_memory) if f]
    assert fired and all(i >= 600 for i in fired), fired
    assert fired[0] - 600 <= 12, fired


def test_a_keys_first_hour_is_not_watched() -> None:
    """A new key's first hour of rows is all clicks (unclicked impressions' rows come when their
    click window closes): its fall to the true CTR is no drift."""
    rng = random.Random(3)
    guard = DriftGuard(DriftSettings())
    early = [guard.observe(_batch(rng, i * MINUTE, 1.0, credit=False)) for i in range(60)]
    later = [guard.observe(_batch(rng, (60 + i) * MINUTE, 0.05, credit=False)) for i in range(600)]
    assert not any(early) and not any(later)


def test_ucb_keeps_choosing_once_discounting_leaves_less_than_one_trial() -> None:
    """River's UCB takes log(n) of all trials: a half-life (or a drift) can bring n below one."""
    learner = RiverBandit("UCB", half_life_ms=1_000, seed=1)
    learner.update(
        Batch.from_rows([{"arm": "a", "trials": 1, "reward_sum": 1}, {"arm": "b", "trials": 1}], window_end=0)
    )
    learner.update(Batch.from_rows([], window_end=5_000))  # 5 half-lives: 0.03 trials an arm
    probabilities = learner.probabilities(["a", "b"])
    assert abs(sum(probabilities.values()) - 1.0) < 1e-12, probabilities
    arm, p = learner.choose(None, ["a", "b"])
    assert p == probabilities[arm] > 0


def test_per_segment_keeps_its_first_segments_when_max_segments_is_lowered() -> None:
    learner = PerSegment({"learner": "ThompsonSampling"}, min_trials=0, seed=1)
    rows = [{"arm": "x", "state": f"k{i}", "trials": 10, "reward_sum": i} for i in range(5)]
    learner.update(Batch.from_rows(rows))
    params = learner.to_params()
    smaller = PerSegment.from_params({**params, "config": {**params["config"], "max_segments": 2}}, seed=1)
    assert list(smaller.to_params()["segments"]) == ["k0", "k1"]
    assert smaller.pooled.to_params()["stats"] == learner.pooled.to_params()["stats"]


def test_made_up_segment_labels_cannot_grow_the_params_without_bound() -> None:
    """A serving node that logs a new label with every impression: the bandit per segment keeps its
    first max_segments and feeds the rest to the pooled bandit only."""
    learner = PerSegment({"learner": "ThompsonSampling"}, max_segments=8, seed=1)
    for i in range(50):
        rows = [{"arm": "x", "state": f"made-up-{i}-{j}", "trials": 1, "reward_sum": 1} for j in range(100)]
        learner.update(Batch.from_rows(rows, window_end=i))
    params = learner.to_params()
    assert len(params["segments"]) == 8 and len(json.dumps(params)) < 2_000
    assert learner.pooled.trials() == 5_000
