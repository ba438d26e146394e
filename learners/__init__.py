"""Pure-Python learners on River: bandits and RL agents with compact params (no Flink imports)."""

from __future__ import annotations

from learners.base import Learner
from learners.batch import ArmStats, Batch
from learners.thompson import ThompsonSampling

__all__ = ["ArmStats", "Batch", "Learner", "ThompsonSampling"]
