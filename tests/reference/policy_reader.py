"""A second reader of published policies, from the JSON and the documented math alone (no import of
``learners``): what a serving node in another language would write. It gives the probability of
each arm for Thompson sampling and LinUCB params (``contract/schemas/policy.params.v1.json``).

Thompson sampling: an arm's posterior is ``Beta(prior_alpha + S, prior_beta + max(n - S, 0))``
(``stats = [n, S]``), or, Gaussian, ``N(m, s² / (prior_n + n))`` with ``m = (prior_n prior_mean +
S_initial + S_delayed) / (prior_n + n)`` and ``s² = (prior_n prior_var + Σr² - S_initial² / n) /
(prior_n + n)`` (``stats = [n, S_initial, Σr², S_delayed]``); an unseen arm has the prior. The
probability of an arm is that its draw is the largest, ``∫ f_a(x) Π_b F_b(x) dx``, here by
adaptive quadrature (the project's client uses a quantile grid).

LinUCB: ``A = ridge I + Σxxᵀ``, ``θ = A⁻¹ Σrx``, bound ``θ·x + alpha sqrt(xᵀ A⁻¹ x)`` for the context
vector ``x`` (the first ``len(features)`` values of the impression's features); the arms tied at
the highest bound share the probability.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import integrate, stats


def read_record(text: str) -> dict[str, Any]:
    """A policy record (the JSON of a policy hash's ``record``): its ``params``."""
    doc = json.loads(text)
    if doc.get("schema") != 1:
        raise ValueError(f"unknown policy record schema {doc.get('schema')!r}")
    params: dict[str, Any] = doc["params"]
    return params


def thompson_probabilities(params: dict[str, Any], arms: Sequence[Any]) -> dict[Any, float]:
    config = params["config"]
    by_arm = dict(zip(params["arms"], params["stats"], strict=True))
    posteriors = []
    for arm in arms:
        s = by_arm.get(arm)
        if config["dist"] == "beta":
            n, total = s if s is not None else (0.0, 0.0)
            posteriors.append(
                stats.beta(config["prior_alpha"] + total, config["prior_beta"] + max(n - total, 0.0))
            )
        else:
            n, initial, squares, delayed = s if s is not None else (0.0, 0.0, 0.0, 0.0)
            weight = config["prior_n"] + n
            mean = (config["prior_n"] * config["prior_mean"] + initial + delayed) / weight
            deviations = max(squares - initial * initial / n, 0.0) if n > 0 else 0.0
            variance = (config["prior_n"] * config["prior_var"] + deviations) / weight
            posteriors.append(stats.norm(mean, math.sqrt(variance / weight)))
    out = {}
    for i, arm in enumerate(arms):
        others = [p for j, p in enumerate(posteriors) if j != i]
        lo, hi = posteriors[i].ppf(1e-12), posteriors[i].ppf(1 - 1e-12)

        def integrand(x: float, i: int = i, others: list = others) -> float:
            return float(posteriors[i].pdf(x) * np.prod([p.cdf(x) for p in others]))

        out[arm] = integrate.quad(integrand, lo, hi, limit=200, epsabs=1e-10)[0]
    total = sum(out.values())
    return {arm: p / total for arm, p in out.items()}


def lin_ucb_probabilities(
    params: dict[str, Any], features: Sequence[float], arms: Sequence[Any]
) -> dict[Any, float]:
    config = params["config"]
    d = len(config["features"])
    x = np.asarray(features[:d], dtype=float)
    by_arm = {arm: (np.asarray(xx, dtype=float), np.asarray(rx, dtype=float))
              for arm, xx, rx in zip(params["arms"], params["xx"], params["rx"], strict=True)}  # fmt: skip
    bounds = []
    for arm in arms:
        xx, rx = by_arm.get(arm, (np.zeros((d, d)), np.zeros(d)))
        a = config["ridge"] * np.eye(d) + xx
        theta = np.linalg.solve(a, rx)
        bounds.append(
            float(theta @ x + config["alpha"] * math.sqrt(max(float(x @ np.linalg.solve(a, x)), 0.0)))
        )
    best = max(bounds)
    tied = [abs(b - best) <= 1e-9 * max(1.0, abs(best)) for b in bounds]
    return {arm: (1.0 / sum(tied) if t else 0.0) for arm, t in zip(arms, tied, strict=True)}
