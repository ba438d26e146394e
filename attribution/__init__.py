"""Attribution of clicks and conversions to decisions, and per-agent reward math (pure Python).

The Flink SQL views compute these per event in the JVM; this package states the same math for
tests, references and learners, with no Flink import.
"""

from __future__ import annotations

from attribution.config import AGENTS, MODELS, AttributionConfig, RewardConfig, RewardWeights
from attribution.credit import (
    Touch,
    credits,
    decay_weight,
    last_touch_credits,
    reward,
    time_decay_credits,
)

__all__ = [
    "AGENTS",
    "MODELS",
    "AttributionConfig",
    "RewardConfig",
    "RewardWeights",
    "Touch",
    "credits",
    "decay_weight",
    "last_touch_credits",
    "reward",
    "time_decay_credits",
]
