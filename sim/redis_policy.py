"""A serving policy backed by the live policy store: the simulator's serving node on the real loop.

Each auction request asks the serving-node client (:class:`state.serving_client.ServingClient`)
for the segment agent's segment of the user (when segments are on: the creative and bid agents
then choose for that segment, and the records log it), the creative agent's creative, the bid
agent's multiplier and the budget agent's pacing rate (the probability of entering the auction),
with the propensity and policy version the client reports. The client serves the latest policy
published to Redis for the (campaign, agent), or its uniform default (version 0) while none is
there or it has gone stale, so the logged propensities are always the true probabilities of the
logged actions.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from learners.campaigns import CampaignTable
from learners.segment_agent import segment_labels
from sim.policies import BID, BUDGET, CREATIVE, SEGMENT, Decision, Request, format_multiplier

if TYPE_CHECKING:  # keep importing sim free of Redis for users of the file/Kafka writers only
    from state.serving_client import ServingClient

__all__ = ["RedisServingPolicy"]


class RedisServingPolicy:
    """The simulator's :class:`~sim.policies.ServingPolicy` over a started :class:`ServingClient`.

    Parameters
    ----------
    client
        A started serving-node client following the store the feedback job publishes to.
    bid
        Whether the bid agent acts (its multiplier from :meth:`ServingClient.bid`); when not, the
        simulator bids at multiplier 1 and logs no bid decision.
    budget
        Whether the budget agent acts (its pacing rate, over the request's ``pacing_rates``); when
        not, every request is entered.
    time_blocks
        Blocks of the UTC day in the agents' context: the job's ``campaigns.time_blocks``.
    segments
        The segment agent's number of segments (``learners.segment.n_segments``), or None: the
        serving node then passes the simulator's own segment label on, as if it knew the truth.

    ``sources`` counts decisions per (agent, source): ``"policy"`` (a published policy chose) or
    ``"default"`` (the client's uniform fallback chose).
    """

    def __init__(
        self,
        client: ServingClient,
        *,
        bid: bool = True,
        budget: bool = True,
        time_blocks: int = 24,
        segments: int | None = None,
    ) -> None:
        self.client = client
        self.segment_labels = segment_labels(segments) if segments else None
        self.bid = bid
        self.budget = budget
        self._blocks = CampaignTable(time_blocks=time_blocks)
        self.sources: Counter[tuple[str, str]] = Counter()
        self._grid: dict[tuple[float, ...], list[str]] = {}

    def decide(self, request: Request) -> list[Decision]:
        client = self.client
        blocks = self._blocks
        context: dict[str, Any] = {
            "segment": request.segment,
            "features": list(request.features),
            "time_block": blocks.time_block(request.ts),
            "block_elapsed": blocks.block_elapsed(request.ts),
            "remaining_budget": request.remaining_budget,
        }
        out = []
        if self.segment_labels:
            segment = client.choose(request.campaign_id, SEGMENT, context, self.segment_labels)
            self.sources[(SEGMENT, segment.source)] += 1
            context["segment"] = str(segment.action)
            out.append(Decision(SEGMENT, str(segment.action), segment.propensity, segment.policy_version))
        creative = client.choose(request.campaign_id, CREATIVE, context, request.creatives)
        self.sources[(CREATIVE, creative.source)] += 1
        out.append(Decision(CREATIVE, str(creative.action), creative.propensity, creative.policy_version))
        if self.bid:
            # Arms as the action strings the job logs and learns on ("1.25"), not floats.
            arms = self._arms(request.bid_multipliers)
            bid = client.bid(request.campaign_id, context, request.base_bid, arms)
            self.sources[(BID, bid.source)] += 1
            # The simulator applies the multiplier and caps the bid at the budget left itself.
            out.append(Decision(BID, str(bid.multiplier), bid.propensity, bid.policy_version))
        if self.budget and request.pacing_rates:
            pace = client.choose(request.campaign_id, BUDGET, context, self._arms(request.pacing_rates))
            self.sources[(BUDGET, pace.source)] += 1
            out.append(Decision(BUDGET, str(pace.action), pace.propensity, pace.policy_version))
        return out

    def _arms(self, multipliers: tuple[float, ...]) -> list[str]:
        arms = self._grid.get(multipliers)
        if arms is None:
            arms = self._grid[multipliers] = [format_multiplier(m) for m in multipliers]
        return arms
