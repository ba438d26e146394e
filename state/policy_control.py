"""An operator's hands on a (campaign, agent) policy: roll back to a known-good version, pin one,
lift a pin. Each writes the chosen version's params again under a new, higher version, so
subscribers never see a version go down, and sets a hold in the key's control hash that the job's
learners obey (``RedisPolicyStore.write``):

- a **rollback** makes the learners take over the rolled-back params (hold ``adopt``) and go on
  learning from them;
- a **pin** refuses the learners' writes (hold ``pinned``) until :func:`unpin`; they go on
  learning meanwhile, and their newest params are published at the key's next update after it.

A **rollout** (:func:`start_rollout`) puts a candidate policy beside the key's control: serving
nodes send it a share of the requests, and may log its choice on the others (shadow).
"""

from __future__ import annotations

import time

from state.codec import PolicyRecord, Rollout
from state.policy_store import RedisPolicyStore, WriteMode

__all__ = [
    "end_rollout",
    "find_version",
    "promote_candidate",
    "reject_candidate",
    "pin",
    "republish",
    "rollback",
    "set_share",
    "start_rollout",
    "unpin",
]

# A learner may write between reading the stored version and writing past it: try again this often.
_ATTEMPTS = 20


def find_version(store: RedisPolicyStore, campaign_id: str, agent: str, version: int) -> PolicyRecord | None:
    """The record of ``version`` from the key's history in Redis, or ``None`` if it is not kept."""
    return next((r for r in store.history(campaign_id, agent) if r.version == version), None)


def _renumbered(source: PolicyRecord, version: int, *, rolled_back_from: int | None = None) -> PolicyRecord:
    """``source``'s params under ``version``, stamped now, naming the version they came from."""
    return PolicyRecord(
        source.campaign_id,
        source.agent,
        version,
        source.learner,
        source.schema_version,
        {**source.params, "version": version},
        int(time.time() * 1000),
        republished_from=source.version,
        rolled_back_from=rolled_back_from,
    )


def republish(
    store: RedisPolicyStore,
    source: PolicyRecord,
    mode: WriteMode,
    *,
    rolled_back_from: int | None = None,
    above: int = 0,
) -> PolicyRecord:
    """Write ``source``'s params under a version above the stored one (and above ``above``), as
    ``mode``. A rollback names the version it replaced: ``rolled_back_from``, or for
    ``WriteMode.ROLLBACK`` by default the stored one. Returns the record written."""
    campaign_id, agent = source.key
    for _ in range(_ATTEMPTS):
        stored = store.get(campaign_id, agent)
        current = stored.version if stored is not None else 0
        version = max(current, source.version, above) + 1
        replaced = rolled_back_from
        if replaced is None and mode is WriteMode.ROLLBACK and stored is not None:
            replaced = current
        record = _renumbered(source, version, rolled_back_from=replaced)
        if store.write(record, mode).written:
            return record
    raise RuntimeError(
        f"republish {campaign_id}/{agent} v{source.version}: the stored version kept moving "
        f"({_ATTEMPTS} attempts); is another operator writing?"
    )


def rollback(store: RedisPolicyStore, source: PolicyRecord) -> PolicyRecord:
    """Serve ``source``'s params again under a new version; the job's learners adopt them."""
    return republish(store, source, WriteMode.ROLLBACK)


def pin(store: RedisPolicyStore, source: PolicyRecord) -> PolicyRecord:
    """Serve ``source``'s params under a new version and refuse the learners' writes until
    :func:`unpin`."""
    return republish(store, source, WriteMode.PIN)


def unpin(store: RedisPolicyStore, campaign_id: str, agent: str) -> int | None:
    """Lift the key's pin; returns the version that was pinned (``None``: it was not pinned)."""
    pinned = store.holds(campaign_id, agent).get("pinned")
    if pinned is not None and not store.release(campaign_id, agent, "pinned", pinned):
        pinned = store.holds(campaign_id, agent).get("pinned")  # pinned again meanwhile: lift that
        if pinned is not None:
            store.release(campaign_id, agent, "pinned", pinned)
    return pinned


def start_rollout(store: RedisPolicyStore, source: PolicyRecord, share: float, shadow: bool) -> Rollout:
    """Make ``source``'s params the key's candidate, serving ``share`` of the requests (0: shadow
    only); it replaces a running rollout of the key. The candidate's version is reserved: the
    control's params are published again right above it, so the learners, whose versions only go
    up from the stored one, never reuse it, and a reward row's ``policy_version`` tells the arms
    apart. A candidate of another learner than the control's is refused: promoted, the job's
    learners could not take its params over."""
    campaign_id, agent = source.key
    for _ in range(_ATTEMPTS):
        stored = store.get(campaign_id, agent)
        if stored is not None and stored.learner != source.learner:
            raise ValueError(
                f"candidate for {campaign_id}/{agent}: expected params of the control's learner "
                f"{stored.learner!r}, found {source.learner!r}"
            )
        version = max(stored.version if stored is not None else 0, source.version) + 1
        if stored is not None:
            reserved = republish(store, stored, WriteMode.REPUBLISH, above=version)
            if (
                reserved.version != version + 1
                or find_version(store, campaign_id, agent, version) is not None
            ):
                continue  # a learner wrote meanwhile: the version may be taken, take the next one
        candidate = _renumbered(source, version)
        rollout = Rollout(candidate, float(share), bool(shadow))
        store.set_rollout(rollout)
        return rollout
    raise RuntimeError(
        f"start_rollout {campaign_id}/{agent}: the stored version kept moving ({_ATTEMPTS} attempts)"
    )


def set_share(store: RedisPolicyStore, campaign_id: str, agent: str, share: float) -> Rollout:
    """Change the share of requests the key's candidate serves."""
    current = store.get_rollout(campaign_id, agent)
    if current is None:
        raise ValueError(f"{campaign_id}/{agent} has no rollout: start one with a candidate first")
    rollout = Rollout(current.candidate, float(share), current.shadow)
    if not store.set_rollout(rollout, expect=current.candidate.version):
        raise ValueError(f"{campaign_id}/{agent}: the rollout changed meanwhile; look again")
    return rollout


def end_rollout(store: RedisPolicyStore, campaign_id: str, agent: str) -> Rollout | None:
    """End the key's rollout: the control serves every request. Returns the rollout ended."""
    current = store.get_rollout(campaign_id, agent)
    store.clear_rollout(campaign_id, agent)
    return current


def promote_candidate(store: RedisPolicyStore, rollout: Rollout) -> PolicyRecord | None:
    """The candidate won: the rollout ends, its params become the control's under a new version,
    and the learners adopt them and learn on from there. ``None`` (nothing done) when the key's
    running rollout is no longer this one."""
    if not store.clear_rollout(*rollout.candidate.key, expect=rollout.candidate.version):
        return None
    return republish(store, rollout.candidate, WriteMode.PROMOTE)


def reject_candidate(store: RedisPolicyStore, rollout: Rollout) -> PolicyRecord | None:
    """The candidate lost: the rollout ends and the control's params are published again under a
    new version that names the candidate (``rolled_back_from``). ``None`` when the key's running
    rollout is no longer this one (nothing done), or has no control policy to republish."""
    campaign_id, agent = rollout.candidate.key
    if not store.clear_rollout(campaign_id, agent, expect=rollout.candidate.version):
        return None
    control = store.get(campaign_id, agent)
    if control is None:
        return None
    version = rollout.candidate.version
    return republish(store, control, WriteMode.REPUBLISH, rolled_back_from=version, above=version)
