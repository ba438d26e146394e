"""The serving-node client on a real Redis: freshness, catch-up, outages, fallback and caps."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from learners import BidAgent, SafetyCaps
from learners.batch import Batch
from state.codec import PolicyRecord
from state.policy_store import RedisPolicyStore
from state.serving_client import ServingClient
from tests.integration.test_policy_store import RedisServer, ts_record

ARMS = ["a", "b", "new"]


@pytest.fixture
def store(services, unique_prefix: str) -> Iterator[RedisPolicyStore]:
    s = RedisPolicyStore(services.redis_url, key_prefix=unique_prefix.rstrip("."))
    yield s
    s.purge()
    s.close()


@pytest.fixture
def throwaway(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, "--appendonly", "yes")
    server.start()
    yield server
    server.stop()


def assert_strictly_increasing(versions: tuple[int, ...]) -> None:
    assert all(a < b for a, b in zip(versions, versions[1:], strict=False)), versions


def test_loads_current_policies_at_start(store: RedisPolicyStore) -> None:
    store.publish(ts_record("c01", "creative", 3))
    store.publish(ts_record("c02", "creative", 5))
    with ServingClient(store, campaigns=["c01"], seed=1) as client:
        assert client.ready
        assert client.version("c01", "creative") == 3
        assert client.version("c02", "creative") == 0  # not followed
        choice = client.choose("c01", "creative", None, ARMS)
        assert (choice.source, choice.policy_version) == ("policy", 3)
        assert choice.action in ARMS and 0 < choice.propensity <= 1
        store.publish(ts_record("c02", "creative", 6))
        store.publish(ts_record("c01", "creative", 4))
        assert client.wait_for_version("c01", "creative", 4, timeout_s=1.0)
        assert client.version("c02", "creative") == 0


def test_new_versions_are_visible_within_a_second_and_only_go_up(store: RedisPolicyStore) -> None:
    lags: list[float] = []
    with ServingClient(store, seed=1, poll_interval_s=5.0) as client:  # pub/sub alone must be fast
        for v in range(1, 31):
            sent = time.monotonic()
            store.publish(ts_record("c01", "creative", v))
            store.publish(ts_record("c01", "creative", v - 1 if v > 1 else 1))  # a replay: ignored
            assert client.wait_for_version("c01", "creative", v, timeout_s=1.0), f"v{v} not seen in 1 s"
            lags.append(time.monotonic() - sent)
        seen = client.versions_seen("c01", "creative")
        stats = client.stats()
    assert_strictly_increasing(seen)
    assert seen[-1] == 30
    assert max(lags) < 1.0
    assert stats.wakeups >= 1 and stats.reloads == 1 and stats.bad_records == 0


def test_catches_up_from_the_stream_after_losing_its_subscription(throwaway: RedisServer) -> None:
    with RedisPolicyStore(throwaway.url) as store, ServingClient(store, poll_interval_s=0.1) as client:
        store.publish(ts_record("c01", "creative", 1))
        assert client.wait_for_version("c01", "creative", 1, timeout_s=1.0)
        assert client.pause()
        # Drop the client's pub/sub connection, then publish: those messages reach nobody.
        admin = redis.Redis.from_url(throwaway.url)
        assert admin.client_kill_filter(_type="pubsub") >= 1
        for v in range(2, 7):
            store.publish(ts_record("c01", "creative", v))
        assert client.version("c01", "creative") == 1
        client.resume()
        assert client.wait_for_version("c01", "creative", 6, timeout_s=2.0)
        admin.close()
        seen, stats = client.versions_seen("c01", "creative"), client.stats()
    assert_strictly_increasing(seen)
    assert seen[-1] == 6
    assert stats.reloads == 1  # read from the stream, not reloaded


def test_keeps_serving_through_a_redis_restart_and_then_catches_up(throwaway: RedisServer) -> None:
    with RedisPolicyStore(throwaway.url, socket_timeout_s=0.5) as store:
        with ServingClient(store, poll_interval_s=0.1, seed=3) as client:
            store.publish(ts_record("c01", "creative", 1))
            assert client.wait_for_version("c01", "creative", 1, timeout_s=1.0)
            throwaway.stop()
            time.sleep(0.5)
            assert client.choose("c01", "creative", None, ARMS).source == "policy"  # served locally
            throwaway.start()  # same port, data kept
            store.publish(ts_record("c01", "creative", 2))
            assert client.wait_for_version("c01", "creative", 2, timeout_s=5.0)
            seen = client.versions_seen("c01", "creative")
    assert seen == (1, 2)


def test_reloads_when_the_stream_was_trimmed_past_its_position(services, unique_prefix: str) -> None:
    prefix = unique_prefix.rstrip(".")
    with RedisPolicyStore(services.redis_url, key_prefix=prefix) as store:
        try:
            with ServingClient(store, poll_interval_s=0.1) as client:
                store.publish(ts_record("c01", "creative", 1))
                assert client.wait_for_version("c01", "creative", 1, timeout_s=1.0)
                assert client.pause()
                for v in range(2, 400):
                    store.publish(ts_record(f"c{v % 7}", "creative", v))
                store.redis.xtrim(store.keys.stream, maxlen=1, approximate=False)  # entries are gone
                store.publish(ts_record("c01", "creative", 400))
                client.resume()
                # c3's last notification (v395) was trimmed away: only a reload can bring it.
                assert client.wait_for_version("c3", "creative", 395, timeout_s=3.0)
                assert client.wait_for_version("c01", "creative", 400, timeout_s=3.0)
        finally:
            store.purge()


def test_default_policy_when_missing_or_stale(store: RedisPolicyStore) -> None:
    now = [1_700_000_000_000.0]
    store.publish(ts_record("c01", "creative", 2, updated_at_ms=int(now[0])))
    with ServingClient(store, stale_after_ms=60_000, seed=5, clock_ms=lambda: now[0]) as client:
        assert client.choose("c01", "creative", None, ARMS).source == "policy"
        missing = client.choose("c09", "creative", None, ARMS)
        assert (missing.source, missing.policy_version, missing.propensity) == ("default", 0, 1 / 3)
        now[0] += 60_001
        stale = client.choose("c01", "creative", None, ARMS)
        assert (stale.source, stale.policy_version) == ("default", 0)
        assert stale.propensity == pytest.approx(1 / 3)
        # A fresh publish brings the policy back.
        store.publish(ts_record("c01", "creative", 3, updated_at_ms=int(now[0])))
        assert client.wait_for_version("c01", "creative", 3, timeout_s=1.0)
        assert client.choose("c01", "creative", None, ARMS).policy_version == 3


def test_same_seed_same_choices(store: RedisPolicyStore) -> None:
    store.publish(ts_record("c01", "creative", 2))

    def run() -> list[tuple[object, float, str]]:
        with ServingClient(store, seed=11) as client:
            return [
                (c.action, c.propensity, c.source)
                for c in (client.choose(cid, "creative", None, ARMS) for cid in ["c01", "c02"] * 20)
            ]

    first, second = run(), run()
    assert first == second
    assert {s for _, _, s in first} == {"policy", "default"}


def bid_record(campaign: str, version: int) -> PolicyRecord:
    agent = BidAgent(["0.5", "1", "1.5"], budget=50.0, n_blocks=2, max_bid=100.0, epsilon=0.0, seed=0)
    rows = [
        {"state": f"0|{t}|young", "arm": m, "trials": 100, "reward_sum": r, "cost_sum": c}
        for t in (0, 1)
        for m, r, c in (("0.5", 2, 3), ("1", 3, 8), ("1.5", 3.5, 15))
    ]
    agent.update(Batch.from_rows(rows, window_end=86_400_000 - 1))
    params = agent.to_params() | {"version": version}
    return PolicyRecord.from_params(campaign, "bid", params, updated_at_ms=int(time.time() * 1000))


def test_bids_are_capped_at_max_bid_and_remaining_budget(store: RedisPolicyStore) -> None:
    store.publish(bid_record("c01", 1))
    ctx = {"time_block": 0, "segment": "young", "remaining_budget": 50.0}
    mults = ["0.5", "1", "1.5"]
    with ServingClient(store, caps=SafetyCaps(max_bid=2.0), seed=0) as client:
        normal = client.bid("c01", ctx, 0.4, mults)
        assert (normal.source, normal.policy_version, normal.multiplier) == ("policy", 1, "1")
        assert normal.amount == pytest.approx(0.4) and not normal.capped
        high = client.bid("c01", ctx, 10.0, mults)
        assert high.amount == 2.0 and high.capped
        short = client.bid("c01", ctx | {"remaining_budget": 0.3}, 0.4, mults)
        assert short.amount == pytest.approx(0.3) and short.capped
        broke = client.bid("c01", ctx | {"remaining_budget": 0.0}, 0.4, mults)
        assert broke.amount == 0.0
        fallback = client.bid("c02", ctx, 10.0, mults)  # no policy: default multiplier, still capped
        assert fallback.source == "default" and fallback.amount == 2.0
        with pytest.raises(ValueError, match="remaining_budget"):
            client.bid("c01", {"time_block": 0, "segment": "young"}, 0.4, mults)


def _write_raw(store: RedisPolicyStore, record: PolicyRecord, text: str) -> None:
    """Write ``text`` as the record, through the store's own script (as another writer might)."""
    from state.codec import Notification

    args = [record.version, text, 1000, record.campaign_id, record.agent, record.updated_at_ms,
            store.keys.channel, Notification.of(record).to_json(), 1000, "learner", 0]  # fmt: skip
    keys = [store.keys.policy(record.campaign_id, record.agent), store.keys.stream,
            store.keys.history(record.campaign_id, record.agent),
            store.keys.control(record.campaign_id, record.agent)]  # fmt: skip
    store._publish_script(keys=keys, args=args)


def test_refuses_non_finite_params_and_a_future_stamp_and_keeps_serving_the_last_good(
    store: RedisPolicyStore,
) -> None:
    import json

    from state.codec import encode_record

    store.publish(ts_record("c01", "creative", 1))
    with ServingClient(store, campaigns=["c01"], seed=1) as client:
        assert client.version("c01", "creative") == 1
        infinite = ts_record("c01", "creative", 2)
        doc = json.loads(encode_record(infinite))
        doc["params"]["stats"][0][1] = float("inf")
        _write_raw(store, infinite, json.dumps(doc))  # "Infinity": JSON that json.loads accepts
        assert _eventually(lambda: client.stats().rejected_records == 1)
        future = ts_record("c01", "creative", 3, updated_at_ms=int(time.time() * 1000) + 3_600_000)
        store.publish(future)
        assert _eventually(lambda: client.stats().rejected_records == 2)
        assert client.version("c01", "creative") == 1
        assert client.choose("c01", "creative", None, ARMS).policy_version == 1
        store.publish(ts_record("c01", "creative", 4))
        assert client.wait_for_version("c01", "creative", 4, timeout_s=5.0)
        assert client.versions_seen("c01", "creative") == (1, 4)


def _eventually(check, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False
