"""The segment agent: groups a campaign's users into value segments, online, with River.

Learning (in the job, once per micro-batch of the key ``(campaign, "segment")``):

- **Clusters.** ``river.cluster.KMeans`` learns from ``Batch.samples``, a sample of the
  impressions' feature vectors that the SQL micro-batches carry (never every event). Its first
  centres come from the first ``warmup`` samples: the best of several k-means++ starts, refined by
  Lloyd passes (River's own start, random Gaussian centres, can leave a centre far from every
  user, or two centres in one segment and two segments under one centre).
- **Value.** Serving nodes log the segment they put each impression in as a decision of the agent
  ``segment`` (action: the label, propensity 1 once a policy is published). Its reward rows are
  the segment's clicks and conversion credit (``rewards.segment``); the micro-batch sums them per
  label, and each segment keeps a ``river.stats.Mean`` of value per impression, merged from those
  sums (``Mean._from_state`` then ``+=``), never fed event by event.

Serving: ``choose(context, labels)`` puts the user whose ``context["features"]`` it is given in the
segment of the nearest centre (propensity 1), or, before the first centres exist, draws a label
uniformly (propensity ``1 / len(labels)``). The creative and bid agents then learn and choose per
that label (``learners.per_segment``, and the bid agent's state).

Params: ``centroids`` (``n_segments`` lists, in the order of the selected features, or ``None``),
``value`` (``{label: [impressions, value per impression]}``, the segments seen), ``warm``
(samples held until the warm-up is done) and ``samples`` (how many it has learned from).

>>> import random
>>> from learners.batch import Batch
>>> rng = random.Random(0)
>>> points = [(rng.gauss(c, 0.1), rng.gauss(c, 0.1)) for _ in range(50) for c in (-2.0, 2.0)]
>>> agent = SegmentAgent(2, warmup=20, seed=1)
>>> agent.update(Batch.from_rows([], samples=points))
>>> a, p = agent.choose({"features": [-2.0, -2.1]}, agent.labels)
>>> b, _ = agent.choose({"features": [2.0, 1.9]}, agent.labels)
>>> a != b, p
(True, 1.0)
>>> agent.update(Batch.from_rows([{"arm": a, "trials": 100, "reward_sum": 3, "delayed_sum": 9.0},
...                               {"arm": b, "trials": 100, "reward_sum": 1}]))
>>> round(agent.value(a), 3), round(agent.value(b), 3)
(0.12, 0.01)
"""

from __future__ import annotations

import collections
import functools
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from river import cluster, stats

from learners.base import Learner, check_arms, compact, round9
from learners.batch import ArmID, Batch

__all__ = ["SegmentAgent", "segment_labels"]

LLOYD_PASSES = 20  # refinement of each k-means++ start over the warm-up samples
RESTARTS = 10  # k-means++ starts tried; the one with the tightest segments is kept
MAX_WARMUP = 5_000


def segment_labels(n_segments: int) -> list[str]:
    """The segment labels serving nodes log: ``k0`` ... ``k<n-1>``.

    >>> segment_labels(3)
    ['k0', 'k1', 'k2']
    """
    return [f"k{i}" for i in range(n_segments)]


def _squared_distances(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``[i, k] = |x_i - c_k|²``, in memory of ``len(x) * len(c)`` (not times the dimension)."""
    d2 = (x * x).sum(axis=1)[:, None] - 2.0 * x @ c.T + (c * c).sum(axis=1)[None, :]
    return np.maximum(d2, 0.0)


class SegmentAgent(Learner):
    """Online value segments of a campaign's users; see the module doc.

    Parameters
    ----------
    n_segments
        Number of segments (clusters), 2 to 64.
    features
        Indices of the impression feature vector to cluster on (e.g. leave the time of day out);
        ``None``: all of them.
    halflife
        River ``KMeans``'s step: how far a centre moves towards each sample (0 to 1).
    warmup
        Samples collected before the first centres are placed (default ``50 * n_segments``).
    sample_rate
        Share of the impressions whose feature vectors the micro-batches carry (the SQL side
        samples by a hash of the impression id); in (0, 1].
    max_samples
        Samples learned from per micro-batch at most (the rest of a larger sample is skipped).
    half_life_ms, seed
        See :class:`learners.base.Learner`; the half-life discounts the value per segment.
    """

    USES_SAMPLES: ClassVar[bool] = True
    CONTEXT_KEYS: ClassVar[tuple[str, ...]] = ("features",)
    RETUNABLE: ClassVar[tuple[str, ...]] = ("half_life_ms", "halflife", "sample_rate", "max_samples")

    def __init__(
        self,
        n_segments: int = 4,
        *,
        features: Sequence[int] | None = None,
        halflife: float = 0.05,
        warmup: int | None = None,
        sample_rate: float = 0.1,
        max_samples: int = 1000,
        half_life_ms: float | None = None,
        seed: int | None = None,
    ) -> None:
        name = type(self).__name__
        if not isinstance(n_segments, int) or isinstance(n_segments, bool) or not 2 <= n_segments <= 64:
            raise ValueError(f"{name}: n_segments must be an int in 2..64; got {n_segments!r}")
        if features is not None and (
            isinstance(features, str)
            or len(features) == 0
            or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 64 for i in features)
        ):
            raise ValueError(
                f"{name}: features must be None or a non-empty list of indices in 0..63; got {features!r}"
            )
        if not (isinstance(halflife, int | float) and 0 < halflife <= 1):
            raise ValueError(f"{name}: halflife must be a number in (0, 1]; got {halflife!r}")
        warmup = 50 * n_segments if warmup is None else warmup
        if not isinstance(warmup, int) or isinstance(warmup, bool) or not n_segments <= warmup <= MAX_WARMUP:
            # The warm-up samples are kept in the params until the first centres: keep them small.
            raise ValueError(f"{name}: warmup must be an int in {n_segments}..{MAX_WARMUP}; got {warmup!r}")
        if not (isinstance(sample_rate, int | float) and 0 < sample_rate <= 1):
            raise ValueError(f"{name}: sample_rate must be a number in (0, 1]; got {sample_rate!r}")
        if not isinstance(max_samples, int) or isinstance(max_samples, bool) or max_samples < 1:
            raise ValueError(f"{name}: max_samples must be an int >= 1; got {max_samples!r}")
        super().__init__(half_life_ms=half_life_ms, seed=seed)
        self.n_segments = n_segments
        self.features = None if features is None else list(features)
        self.halflife = float(halflife)
        self.warmup = warmup
        self.sample_rate = float(sample_rate)
        self.max_samples = max_samples
        self.labels = segment_labels(n_segments)
        self._index = {label: i for i, label in enumerate(self.labels)}
        self._kmeans: cluster.KMeans | None = None
        self._warm: list[list[float]] = []
        self._dim: int | None = None
        self._values: dict[str, stats.Mean] = {}  # by label, the segments seen
        self._samples = 0
        self._centroids: np.ndarray | None = None

    # -- learning -----------------------------------------------------------------------------

    def _select(self, raw: Sequence[float]) -> list[float] | None:
        """The selected features of a vector, or None when it cannot be used (too short, not
        finite, or of another length than the samples learned from)."""
        if self.features is None:
            vector = [float(v) for v in raw]
        elif max(self.features) < len(raw):
            vector = [float(raw[i]) for i in self.features]
        else:
            return None
        if not vector or not all(math.isfinite(v) for v in vector):
            return None
        return vector if self._dim is None or len(vector) == self._dim else None

    def _learn(self, batch: Batch, weight: float) -> None:
        for raw in batch.samples[: self.max_samples]:
            vector = self._select(raw)
            if vector is None:
                continue
            self._dim = len(vector)
            self._samples += 1
            if self._kmeans is None:
                self._warm.append(vector)
                if len(self._warm) >= self.warmup:
                    self._start(self._warm)
                    self._warm = []
            else:
                self._kmeans.learn_one(dict(enumerate(vector)))
        for row in batch.rows:
            i = self._index.get(str(row.arm))
            if i is None:
                continue  # not a label of this agent: a serving node's mistake, left out
            mean = self._values.setdefault(self.labels[i], stats.Mean())
            if row.trials > 0:
                mean += stats.Mean._from_state(row.trials * weight, row.total_reward / row.trials)
            elif row.delayed_sum and mean.n > 0:
                # Credit without impressions: value added to the impressions already counted.
                mean._mean += weight * row.delayed_sum / mean.n
            if weight != 1.0:
                mean.n, mean._mean = round9(mean.n), round9(mean._mean)

    def _start(self, samples: list[list[float]]) -> None:
        """The first centres: the best of ``RESTARTS`` k-means++ starts over the warm-up samples,
        each refined by Lloyd passes (the lowest within-segment sum of squares wins)."""
        rng = random.Random(self._seed)
        x = np.asarray(samples, dtype=float)
        best, best_cost = None, math.inf
        for _ in range(RESTARTS):
            c = self._lloyd(x, self._plus_plus(x, rng))
            cost = float(_squared_distances(x, c).min(axis=1).sum())
            if cost < best_cost:
                best, best_cost = c, cost
        assert best is not None
        self._set_centres([[round9(v) for v in row] for row in best.tolist()])

    def _plus_plus(self, x: np.ndarray, rng: random.Random) -> np.ndarray:
        """k-means++: each next centre drawn with probability proportional to its squared distance
        from the nearest centre so far."""
        centres = [x[rng.randrange(len(x))]]
        for _ in range(1, self.n_segments):
            d2 = _squared_distances(x, np.asarray(centres)).min(axis=1)
            cumulative = np.cumsum(d2)
            if cumulative[-1] <= 0:
                centres.append(x[rng.randrange(len(x))])
                continue
            pick = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
            centres.append(x[min(pick, len(x) - 1)])
        return np.asarray(centres)

    def _lloyd(self, x: np.ndarray, c: np.ndarray) -> np.ndarray:
        c = c.copy()
        for _ in range(LLOYD_PASSES):
            nearest = np.argmin(_squared_distances(x, c), axis=1)
            for k in range(self.n_segments):
                members = x[nearest == k]
                if len(members):
                    c[k] = members.mean(axis=0)
        return c

    def _set_centres(self, centres: list[list[float]]) -> None:
        km = cluster.KMeans(n_clusters=self.n_segments, halflife=self.halflife, seed=self._seed)
        for k, centre in enumerate(centres):
            km.centers[k] = collections.defaultdict(functools.partial(float, 0.0), enumerate(centre))
        self._kmeans = km
        self._dim = len(centres[0])

    def _scale(self, factor: float) -> None:
        for mean in self._values.values():
            mean.n = round9(mean.n * factor)

    def _invalidate(self) -> None:
        self._centroids = None

    # -- serving ------------------------------------------------------------------------------

    def centroids(self) -> list[list[float]] | None:
        """The segments' centres (in the order of the selected features), or None before warm-up."""
        if self._kmeans is None:
            return None
        return [
            [round9(self._kmeans.centers[k][j]) for j in range(self._dim or 0)]
            for k in range(self.n_segments)
        ]

    def value(self, label: str) -> float:
        """Value per impression of a segment (clicks and credit, ``rewards.segment``); 0 unseen."""
        mean = self._values.get(label)
        return 0.0 if mean is None else float(mean.get())

    def high_value(self) -> list[str]:
        """The high-value segments: those worth more per impression than the campaign's mean
        impression (the value of all segments, weighted by their impressions)."""
        total = sum(m.n for m in self._values.values())
        if total <= 0:
            return []
        mean = sum(m.n * m.get() for m in self._values.values()) / total
        return [label for label, m in self._values.items() if m.n > 0 and m.get() > mean]

    def segment_of(self, features: Sequence[float]) -> str | None:
        """The label of the nearest centre to a feature vector (None before warm-up, or when the
        vector does not fit)."""
        if self._kmeans is None:
            return None
        vector = self._select(features)
        if vector is None:
            return None
        if self._centroids is None:
            self._centroids = np.asarray(self.centroids(), dtype=float)
        x = np.asarray(vector)
        return self.labels[int(np.argmin(((self._centroids - x) ** 2).sum(axis=1)))]

    def choose(self, context: Mapping[str, Any] | None, arms: Sequence[ArmID]) -> tuple[ArmID, float]:
        check_arms(arms, "SegmentAgent.choose")
        features = (context or {}).get("features")
        if features is None:
            raise ValueError("SegmentAgent.choose: context lacks 'features'")
        label = self.segment_of(features)
        if label is not None and label in arms:
            return label, 1.0
        return arms[int(self._rng.random() * len(arms))], 1.0 / len(arms)

    # -- params -------------------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        return {
            "n_segments": self.n_segments,
            "features": self.features,
            "halflife": self.halflife,
            "warmup": self.warmup,
            "sample_rate": self.sample_rate,
            "max_samples": self.max_samples,
            "half_life_ms": self.half_life_ms,
        }

    def _state(self) -> dict[str, Any]:
        return {
            "centroids": self.centroids(),
            "value": {label: [compact(m.n), compact(m.get())] for label, m in self._values.items()},
            "warm": self._warm,
            "samples": self._samples,
        }

    def _load_state(self, state: Mapping[str, Any]) -> None:
        name = f"{type(self).__name__}.from_params"
        values = state["value"]
        if not isinstance(values, Mapping) or not all(
            label in self._index and len(v) == 2 for label, v in values.items()
        ):
            raise ValueError(f"{name}: 'value' must map segment labels {self.labels} to [n, mean]")
        self._values = {label: stats.Mean._from_state(float(n), float(m)) for label, (n, m) in values.items()}
        self._warm = [[float(v) for v in vector] for vector in state["warm"]]
        self._samples = int(state["samples"])
        self._dim = len(self._warm[0]) if self._warm else None
        self._kmeans = None
        centroids = state["centroids"]
        if centroids is not None:
            if len(centroids) != self.n_segments or len({len(c) for c in centroids}) != 1:
                raise ValueError(f"{name}: 'centroids' must hold {self.n_segments} vectors of one length")
            self._set_centres([[float(v) for v in c] for c in centroids])
