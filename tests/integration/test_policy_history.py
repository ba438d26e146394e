"""Policy history, rollback and pins on a real Redis: what the store keeps, what the learners' writes
meet while an operator holds a key, and what a subscriber sees."""

from __future__ import annotations

from state import policy_control
from state.pending import Outcome, PendingPublisher
from state.policy_store import RedisPolicyStore, WriteMode
from state.serving_client import ServingClient
from tests.integration.test_policy_store import ts_record


def test_history_keeps_every_written_version_with_its_params_newest_first(store):
    for version in (1, 2, 2, 5, 3):  # 2 again and 3 after 5 are refused: not in the history
        store.publish(ts_record("c01", "creative", version))
    store.publish(ts_record("c01", "bid", 7))
    history = store.history("c01", "creative")
    assert [r.version for r in history] == [5, 2, 1]
    assert history[0] == store.get("c01", "creative")
    assert history[2].params == ts_record("c01", "creative", 1).params
    assert [r.version for r in store.history("c01", "creative", count=2)] == [5, 2]
    assert store.history("c02", "creative") == []


def test_history_is_capped_near_history_len(services, unique_prefix):
    with RedisPolicyStore(services.redis_url, key_prefix=unique_prefix.rstrip("."), history_len=50) as s:
        try:
            for version in range(1, 501):
                s.publish(ts_record("c01", "creative", version))
            kept = s.history("c01", "creative")
            # MAXLEN ~ trims whole macro nodes (100 entries by default): near the cap, not at it.
            assert 50 <= len(kept) <= 150, len(kept)
            assert kept[0].version == 500
        finally:
            s.purge()


def test_rollback_writes_the_old_params_under_a_higher_version_and_the_learners_must_adopt_it(store):
    for version in (1, 2, 3):
        store.publish(ts_record("c01", "creative", version))
    good = policy_control.find_version(store, "c01", "creative", 2)
    assert good is not None
    rolled = policy_control.rollback(store, good)
    assert (rolled.version, rolled.republished_from, rolled.rolled_back_from) == (4, 2, 3)
    assert rolled.params == {**good.params, "version": 4}
    assert store.get("c01", "creative") == rolled
    assert store.holds("c01", "creative") == {"adopt": 4}
    # The learners' newest params (v5, learned from v3) are refused until they descend from v4;
    # the hold stays, so learners restored from before their adoption are refused again.
    refused = store.write(ts_record("c01", "creative", 5))
    assert (refused.status, refused.held) == ("adopt", 4)
    assert store.write(ts_record("c01", "creative", 5), lineage=3).status == "adopt"
    assert store.get("c01", "creative").version == 4
    assert store.write(ts_record("c01", "creative", 5), lineage=4).status == "written"
    assert store.holds("c01", "creative") == {"adopt": 4}
    assert store.write(ts_record("c01", "creative", 6)).status == "adopt"  # lineage 0: before it


def test_a_pin_refuses_the_learners_until_unpinned_and_survives_a_new_store(services, store):
    for version in (1, 2, 3):
        store.publish(ts_record("c01", "bid", version))
    pinned = policy_control.pin(store, policy_control.find_version(store, "c01", "bid", 1))
    assert (pinned.version, pinned.republished_from, pinned.rolled_back_from) == (4, 1, None)
    publisher = PendingPublisher(store)
    assert publisher.publish(ts_record("c01", "bid", 9)) is Outcome.PINNED
    assert publisher.pending == 0  # a refused write is not held for a retry
    # Another process (a restarted job) meets the same pin: it lives in Redis.
    with RedisPolicyStore(services.redis_url, key_prefix=store.keys.prefix) as again:
        assert again.write(ts_record("c01", "bid", 10)).status == "pinned"
        assert again.holds("c01", "bid") == {"pinned": 4}
    assert policy_control.unpin(store, "c01", "bid") == 4
    assert policy_control.unpin(store, "c01", "bid") is None
    assert publisher.publish(ts_record("c01", "bid", 10)) is Outcome.WRITTEN
    assert [r.version for r in store.history("c01", "bid")] == [10, 4, 3, 2, 1]


def test_operators_write_past_the_learners_holds_and_the_stored_version_wins(store):
    store.publish(ts_record("c01", "creative", 10))
    old = ts_record("c01", "creative", 3)  # e.g. read back from the policy-updates topic
    rolled = policy_control.rollback(store, old)
    assert rolled.version == 11 and rolled.rolled_back_from == 10
    pinned = policy_control.pin(store, rolled)
    assert pinned.version == 12 and store.holds("c01", "creative") == {"adopt": 11, "pinned": 12}
    assert store.write(ts_record("c01", "creative", 99), WriteMode.LEARNER).status == "adopt"


def test_a_subscriber_follows_a_rollback_with_versions_only_going_up(store):
    client = ServingClient(store, seed=0, poll_interval_s=0.05)
    assert client.start(wait_s=10)
    try:
        for version in (1, 2, 3):
            store.publish(ts_record("c01", "creative", version))
        assert client.wait_for_version("c01", "creative", 3, timeout_s=10)
        rolled = policy_control.rollback(store, policy_control.find_version(store, "c01", "creative", 1))
        assert client.wait_for_version("c01", "creative", rolled.version, timeout_s=10)
        served = client.record("c01", "creative")
        assert served.params == {**ts_record("c01", "creative", 1).params, "version": rolled.version}
        seen = client.versions_seen("c01", "creative")
        assert list(seen) == sorted(set(seen)) and seen[-1] == 4, seen
    finally:
        client.stop()
