"""Warm start from Parquet logs with IPW correction, and off-policy estimators on synthetic logs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from learners import LinUCB, ThompsonSampling
from learners.ope import TabularRewardModel, doubly_robust, evaluate, ips, snips
from learners.warm_start import batch_from_logs, warm_start

# Two contexts, equally frequent; arm "a" is great in "hot" and poor in "cold", "b" is flat.
CTR = {("hot", "a"): 0.30, ("cold", "a"): 0.02, ("hot", "b"): 0.12, ("cold", "b"): 0.12}
TRUE_MEAN = {"a": 0.16, "b": 0.12}  # averaged over contexts: "a" is the better arm


def _biased_logs(n: int, seed: int) -> pa.Table:
    """A logging policy that plays "a" mostly in "hot" contexts: the raw mean of "a" is inflated."""
    rng = np.random.default_rng(seed)
    ctx = np.where(rng.random(n) < 0.5, "hot", "cold")
    p_a = np.where(ctx == "hot", 0.9, 0.1)
    pick_a = rng.random(n) < p_a
    action = np.where(pick_a, "a", "b")
    propensity = np.where(pick_a, p_a, 1 - p_a)
    ctr = np.array([CTR[(c, a)] for c, a in zip(ctx, action, strict=True)])
    reward = (rng.random(n) < ctr).astype(float)
    return pa.table(
        {
            "campaign_id": ["c00"] * n,
            "agent": ["creative"] * n,
            "context": ctx,
            "hot": (ctx == "hot").astype(float),
            "bias": np.ones(n),
            "action": action,
            "propensity": propensity,
            "reward": reward,
        }
    )


def test_warm_start_from_parquet_corrects_the_logging_bias(tmp_path: Path) -> None:
    table = _biased_logs(40_000, seed=1)
    path = tmp_path / "decisions.parquet"
    pq.write_table(table, path)
    raw_a = float(np.mean(table.filter(pa.compute.equal(table["action"], "a"))["reward"].to_numpy()))
    assert raw_a > 0.25  # the bias the correction has to remove

    batch = batch_from_logs(path, where={"campaign_id": "c00", "agent": "creative"}, max_weight=20.0)
    means = {row.arm: row.reward_sum / row.trials for row in batch.rows}
    # SNIPS per arm: within 4 standard errors (about 0.01 with these weights and counts) of the truth.
    for arm, true in TRUE_MEAN.items():
        assert means[arm] == pytest.approx(true, abs=0.02)

    ts = warm_start(ThompsonSampling(seed=0), path, strength=0.5)
    probs = ts.probabilities(["a", "b"])
    assert probs["a"] > 0.99  # the corrected history ranks "a" first
    assert ts.stats("a")["trials"] == pytest.approx(0.5 * sum(table["action"].to_numpy() == "a"))
    assert batch_from_logs(path, where={"agent": "bid"}).rows == ()


def test_warm_start_contextual_learner(tmp_path: Path) -> None:
    path = tmp_path / "decisions.parquet"
    pq.write_table(_biased_logs(20_000, seed=2), path)
    lin = warm_start(LinUCB(["bias", "hot"], alpha=0.1, seed=0), path, features=["bias", "hot"])
    assert lin.choose({"bias": 1.0, "hot": 1.0}, ["a", "b"])[0] == "a"
    assert lin.choose({"bias": 1.0, "hot": 0.0}, ["a", "b"])[0] == "b"


def test_warm_start_rejects_bad_columns(tmp_path: Path) -> None:
    table = pa.table({"action": ["a"], "propensity": [0.0], "reward": [1.0]})
    with pytest.raises(ValueError, match="propensities in \\(0, 1\\]"):
        batch_from_logs(table)
    with pytest.raises(ValueError, match="column 'score' not found"):
        batch_from_logs(table, reward="score")


def test_ope_estimators_on_biased_logs() -> None:
    table = _biased_logs(60_000, seed=3)
    logs = [
        {"context": {"ctx": c}, "action": a, "propensity": p, "reward": r}
        for c, a, p, r in zip(
            table["context"].to_pylist(),
            table["action"].to_pylist(),
            table["propensity"].to_pylist(),
            table["reward"].to_pylist(),
            strict=True,
        )
    ]

    def target(ctx: dict) -> dict[str, float]:  # a contextual policy: "a" when hot, else "b"
        return {"a": 1.0, "b": 0.0} if ctx["ctx"] == "hot" else {"a": 0.0, "b": 1.0}

    true_value = 0.5 * CTR[("hot", "a")] + 0.5 * CTR[("cold", "b")]
    model = TabularRewardModel(key=lambda ctx: ctx["ctx"]).fit(logs)
    est = evaluate(logs, target, model)
    for name in ("ips", "snips", "dr"):
        e = est[name]
        assert abs(e.value - true_value) <= 4 * e.stderr + 1e-3, (name, e, true_value)
        assert abs(e.value - true_value) / true_value < 0.05
    assert est["snips"].ess < len(logs)


def test_ope_input_validation() -> None:
    with pytest.raises(ValueError, match="equal-length"):
        ips([1.0], [0.5, 0.5], [1.0])
    with pytest.raises(ValueError, match="logged propensities"):
        snips([1.0], [0.0], [1.0])
    with pytest.raises(ValueError, match="no probability"):
        snips([1.0], [0.5], [0.0])
    with pytest.raises(ValueError, match="q_logged"):
        doubly_robust([1.0], [0.5], [1.0], [0.1, 0.2], [0.1])
