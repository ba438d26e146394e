"""Warm start from historical decision logs (Parquet), corrected with inverse-propensity weights.

The logging policy over-represents the actions it liked, and if it acted on context, the rows of
an action are a biased sample of contexts. Each logged row gets weight ``w = 1 / propensity``
(clipped at ``max_weight``); within each ``(state, arm)`` the weights are normalised to sum to
``strength * n`` (``n`` = rows of that arm), so:

- the arm's mean reward is the self-normalised IPS estimate (the value of always playing that arm
  over the logged context distribution), not the biased raw mean;
- the evidence weighs like ``strength * n`` trials: ``strength < 1`` discounts stale history.

The result is an ordinary :class:`~learners.batch.Batch`, so any learner can absorb it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from learners.base import Learner
from learners.batch import ArmStats, Batch

__all__ = ["batch_from_logs", "warm_start"]

L = TypeVar("L", bound=Learner)


def _column(table: pa.Table, name: str) -> np.ndarray:
    if name not in table.column_names:
        raise ValueError(f"warm_start: column {name!r} not found; got columns {table.column_names}")
    return table.column(name).to_numpy(zero_copy_only=False)


def batch_from_logs(
    source: str | Path | pa.Table,
    *,
    arm: str = "action",
    reward: str = "reward",
    propensity: str = "propensity",
    state: str | None = None,
    cost: str | None = None,
    features: Sequence[str] | None = None,
    where: Mapping[str, Any] | None = None,
    strength: float = 1.0,
    max_weight: float = 100.0,
    window_end: int = 0,
) -> Batch:
    """Aggregate logged decisions into an IPW-corrected batch.

    ``source`` is a Parquet file or dataset directory, or a ``pyarrow.Table``. ``where`` keeps rows
    whose columns equal the given values (e.g. ``{"campaign_id": "c00", "agent": "creative"}``).
    ``features`` names numeric columns forming the context ``x`` (for LinUCB's ``xx`` / ``rx``).

    >>> table = pa.table({"action": ["a", "a", "b"], "propensity": [0.8, 0.2, 0.5],
    ...                   "reward": [0.0, 1.0, 1.0]})
    >>> row = batch_from_logs(table).rows[0]
    >>> row.arm, row.trials, row.reward_sum  # SNIPS mean of "a" is 0.8, not the raw 0.5
    ('a', 2.0, 1.6)
    """
    if not strength > 0:
        raise ValueError(f"warm_start: strength must be > 0; got {strength!r}")
    if not max_weight >= 1:
        raise ValueError(f"warm_start: max_weight must be >= 1; got {max_weight!r}")
    table = source if isinstance(source, pa.Table) else pq.read_table(source)
    for col, value in (where or {}).items():
        if col not in table.column_names:
            raise ValueError(f"warm_start: where-column {col!r} not found; got columns {table.column_names}")
        table = table.filter(pc.equal(table.column(col), value))
    if table.num_rows == 0:
        return Batch((), window_end=window_end)
    arms = table.column(arm).to_pylist()
    states = table.column(state).to_pylist() if state else [""] * table.num_rows
    r = _column(table, reward).astype(float)
    p = _column(table, propensity).astype(float)
    if np.any(p <= 0) or np.any(p > 1) or np.any(np.isnan(p)):
        raise ValueError(f"warm_start: column {propensity!r} must hold propensities in (0, 1]")
    c = _column(table, cost).astype(float) if cost else np.zeros(len(r))
    x = np.column_stack([_column(table, f).astype(float) for f in features]) if features else None
    w_raw = np.minimum(1.0 / p, max_weight)

    groups: dict[tuple[str, Any], list[int]] = defaultdict(list)
    for i, key in enumerate(zip(states, arms, strict=True)):
        groups[(str(key[0] or ""), key[1])].append(i)
    rows = []
    for (st, a), idx_list in groups.items():
        idx = np.array(idx_list)
        w = w_raw[idx] * (strength * len(idx) / w_raw[idx].sum())
        ri = r[idx]
        xx = rx = None
        if x is not None:
            xi = x[idx]
            xx = tuple(float(v) for v in ((xi.T * w) @ xi).ravel())
            rx = tuple(float(v) for v in (xi.T @ (w * ri)))
        rows.append(
            ArmStats(
                arm=a,
                state=st,
                trials=float(w.sum()),
                reward_sum=float(np.dot(w, ri)),
                reward_sq_sum=float(np.dot(w, ri * ri)),
                ipw_reward_sum=strength * float(np.sum(ri / p[idx])),
                cost_sum=float(np.dot(w, c[idx])),
                xx=xx,
                rx=rx,
            )
        )
    return Batch(tuple(rows), window_end=window_end)


def warm_start(learner: L, source: str | Path | pa.Table, **kwargs: Any) -> L:
    """Update ``learner`` with :func:`batch_from_logs` of ``source``; returns the learner.

    >>> from learners.thompson import ThompsonSampling
    >>> table = pa.table({"action": ["a"] * 4 + ["b"] * 4, "propensity": [0.5] * 8,
    ...                   "reward": [1, 1, 0, 1, 0, 0, 0, 1]})
    >>> ts = warm_start(ThompsonSampling(seed=0), table)
    >>> ts.posterior_params("a"), ts.posterior_params("b")
    ((4.0, 2.0), (2.0, 4.0))
    """
    learner.update(batch_from_logs(source, **kwargs))
    return learner
