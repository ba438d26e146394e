"""The documented rule for a key whose stored params were made under another config
(learners.registry.reconcile): re-tunable changes keep the learned state, others start afresh,
and versions always go on from the stored one."""

from __future__ import annotations

import pytest

from learners.batch import Batch
from learners.campaigns import CampaignTable
from learners.registry import KeyedLearners, LearnerSpecs


def _stored(specs: LearnerSpecs, campaigns: CampaignTable) -> dict:
    keyed = KeyedLearners(specs, campaigns=campaigns)
    learner = keyed.learner("c01", "bid", None)
    rows = [
        {"state": f"20000|{t}|young", "arm": m, "trials": 100, "wins": 40, "reward_sum": 2.0, "cost_sum": 8.0}
        for t in (0, 12)
        for m in ("0.5", "1")
    ]
    for _ in range(3):
        learner.update(Batch.from_rows(rows, window_end=20000 * 86_400_000))
    return learner.to_params()


def test_a_new_budget_keeps_the_bid_agents_learned_state_under_the_new_budget():
    specs = LearnerSpecs()
    stored = _stored(specs, CampaignTable(budgets={"c01": 100.0}))
    keyed = KeyedLearners(specs, campaigns=CampaignTable(budgets={"c01": 150.0}))
    learner = keyed.learner("c01", "bid", stored)
    params = learner.to_params()
    assert params["config"]["budget"] == 150.0
    assert params["cells"] == stored["cells"] and params["volume"] == stored["volume"]
    assert learner.version == stored["version"] == 3
    assert keyed.config_changes == 1


@pytest.mark.parametrize(
    ("specs", "campaigns"),
    [
        (LearnerSpecs(), CampaignTable(time_blocks=12, budgets={"c01": 100.0})),  # other time blocks
        (LearnerSpecs({"bid": {"learner": "BidAgent", "multipliers": ["0.5", "2"]}}), None),  # other arms
        (LearnerSpecs({"bid": {"learner": "UCB"}}), None),  # another learner
    ],
)
def test_any_other_change_starts_the_key_afresh_with_its_versions_going_on(specs, campaigns):
    stored = _stored(LearnerSpecs(), CampaignTable(budgets={"c01": 100.0}))
    keyed = KeyedLearners(specs, campaigns=campaigns or CampaignTable(budgets={"c01": 100.0}))
    learner = keyed.learner("c01", "bid", stored)
    params = learner.to_params()
    assert params.get("cells") in (None, [])  # nothing learned carried over
    assert learner.version == 3  # the next publish is version 4: serving nodes take it
    learner.update(Batch.from_rows([{"state": "20001|0|young", "arm": "1", "trials": 1}], window_end=0))
    assert learner.version == 4
    assert keyed.config_changes == 1


def test_unchanged_config_loads_the_stored_params_as_they_are():
    specs, campaigns = LearnerSpecs(), CampaignTable(budgets={"c01": 100.0})
    stored = _stored(specs, campaigns)
    keyed = KeyedLearners(specs, campaigns=campaigns)
    assert keyed.learner("c01", "bid", stored).to_params() == stored
    assert keyed.config_changes == 0


def test_per_campaign_arguments_cannot_be_set_for_all_campaigns():
    with pytest.raises(ValueError, match=r"learners.budget.budget': expected nothing here"):
        LearnerSpecs({"budget": {"learner": "BudgetPacer", "budget": 100.0}})
