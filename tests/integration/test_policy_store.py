"""The Redis policy store on a real Redis: monotonic writes, notifications, auth, TLS and outages."""

from __future__ import annotations

import json
import random
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from learners import ThompsonSampling
from learners.batch import Batch
from state.codec import PolicyRecord
from state.pending import Outcome, PendingPublisher
from state.policy_store import (
    PolicyStoreAuthError,
    PolicyStoreUnavailable,
    RedisPolicyStore,
)
from tests.integration.secured import RedisServer, free_port, make_certs

NOW_MS = 1_700_000_000_000


def ts_record(campaign: str, agent: str, version: int, *, updated_at_ms: int | None = None) -> PolicyRecord:
    """A Thompson-sampling policy whose params differ by version (so a wrong write is visible)."""
    ts = ThompsonSampling(seed=0)
    ts.update(Batch.from_rows([{"arm": "a", "trials": 10 + version, "reward_sum": version % 10}]))
    params = ts.to_params() | {"version": version}
    stamp = updated_at_ms if updated_at_ms is not None else int(time.time() * 1000)
    return PolicyRecord.from_params(campaign, agent, params, updated_at_ms=stamp)


@pytest.fixture
def throwaway(tmp_path: Path) -> Iterator[RedisServer]:
    # Append-only file: a restarted server keeps its data, like a production Redis.
    server = RedisServer(tmp_path, "--appendonly", "yes")
    server.start()
    yield server
    server.stop()


def stream_versions(store: RedisPolicyStore) -> list[int]:
    return [int(fields[b"version"]) for _, fields in store.redis.xrange(store.keys.stream)]


# -- writes ------------------------------------------------------------------------------------


def test_publish_then_get_round_trips(store: RedisPolicyStore) -> None:
    rec = ts_record("c01", "creative", 3)
    assert store.publish(rec) is True
    assert store.get("c01", "creative") == rec
    assert store.get("c01", "bid") is None
    other = ts_record("c02", "creative", 1)
    store.publish(other)
    assert store.get_many([("c01", "creative"), ("c02", "creative"), ("c03", "x")]) == {
        ("c01", "creative"): rec,
        ("c02", "creative"): other,
    }
    assert {r.key for r in store.load_all()} == {("c01", "creative"), ("c02", "creative")}
    assert [r.key for r in store.load_all(["c02"])] == [("c02", "creative")]
    # The stored form is a hash: version (compared by the script) and the record.
    assert store.redis.hget(store.keys.policy("c01", "creative"), "version") == b"3"


def test_lower_or_equal_version_never_overwrites(store: RedisPolicyStore) -> None:
    v2 = ts_record("c01", "creative", 2)
    assert store.publish(v2) is True
    assert store.publish(ts_record("c01", "creative", 1)) is False
    assert store.publish(ts_record("c01", "creative", 2, updated_at_ms=NOW_MS)) is False
    assert store.get("c01", "creative") == v2
    assert store.publish(ts_record("c01", "creative", 3)) is True
    assert store.get("c01", "creative").version == 3


def test_each_write_makes_one_stream_entry_and_one_message(store: RedisPolicyStore) -> None:
    pubsub = store.pubsub()
    pubsub.subscribe(store.keys.channel)
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    results = [store.publish(ts_record("c01", "bid", v)) for v in (1, 2, 1, 3, 3, 2)]
    assert results == [True, True, False, True, False, False]
    messages = []
    while (msg := pubsub.get_message(timeout=0.5)) is not None:
        messages.append(json.loads(msg["data"]))
    pubsub.close()
    assert [m["version"] for m in messages] == [1, 2, 3]
    assert {(m["campaign"], m["agent"]) for m in messages} == {("c01", "bid")}
    assert stream_versions(store) == [1, 2, 3]
    (_, fields), *_ = store.redis.xrange(store.keys.stream)
    assert set(fields) == {b"campaign", b"agent", b"version", b"updated_at"}


def test_concurrent_publishers_never_leave_a_lower_version(store: RedisPolicyStore) -> None:
    records = [ts_record("c01", "creative", v) for v in range(1, 121)]
    written: list[bool] = []
    observed: list[int] = []
    done = threading.Event()
    key = store.keys.policy("c01", "creative")

    def publisher(seed: int) -> None:
        order = records[:]
        random.Random(seed).shuffle(order)  # every thread replays all versions, out of order
        for rec in order:
            written.append(store.publish(rec))

    def watcher() -> None:
        while not done.is_set():
            raw = store.redis.hget(key, "version")
            if raw is not None:
                observed.append(int(raw))

    threads = [threading.Thread(target=publisher, args=(seed,)) for seed in range(6)]
    watch = threading.Thread(target=watcher)
    watch.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watch.join()
    assert store.get("c01", "creative") == records[-1]
    assert observed == sorted(observed), "a reader saw the stored version go down"
    versions = stream_versions(store)
    assert sum(written) == len(versions)
    assert all(a < b for a, b in zip(versions, versions[1:], strict=False)), versions
    assert versions[-1] == 120


def test_stream_is_trimmed_near_maxlen(services, unique_prefix: str) -> None:
    with RedisPolicyStore(services.redis_url, key_prefix=unique_prefix.rstrip("."), stream_maxlen=10) as s:
        try:
            for v in range(1, 401):
                s.publish(ts_record("c01", "bid", v))
            # MAXLEN ~ trims whole radix-tree nodes (100 entries by default), never below maxlen.
            assert 10 <= s.redis.xlen(s.keys.stream) <= 110
        finally:
            s.purge()


# -- credentials and TLS -------------------------------------------------------------------------


def test_acl_user_publishes_and_a_wrong_password_is_a_clear_error(services, unique_prefix: str) -> None:
    prefix = unique_prefix.rstrip(".")
    user = f"u{prefix[1:9]}"
    admin = redis.Redis.from_url(services.redis_url)
    admin.execute_command("ACL", "SETUSER", user, "on", ">s3cret", f"~{prefix}:*", "&*", "+@all")
    try:
        with RedisPolicyStore(services.redis_url, key_prefix=prefix, username=user, password="s3cret") as s:
            assert s.publish(ts_record("c01", "creative", 1)) is True
            assert s.get("c01", "creative").version == 1
            s.purge()
        with RedisPolicyStore(services.redis_url, key_prefix=prefix, username=user, password="wrong") as s:
            with pytest.raises(PolicyStoreAuthError, match="refused the credentials"):
                s.publish(ts_record("c01", "creative", 2))
        # The ACL allows this user its own prefix only: another one is a permission error.
        with RedisPolicyStore(
            services.redis_url, key_prefix=f"x{prefix}", username=user, password="s3cret"
        ) as s:
            with pytest.raises(PolicyStoreAuthError, match="NOPERM|permission"):
                s.publish(ts_record("c01", "creative", 1))
    finally:
        admin.acl_deluser(user)
        admin.close()


def test_password_protected_redis(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, "--requirepass", "pw1")
    server.start()
    try:
        with RedisPolicyStore(server.url, password="pw1") as s:
            assert s.publish(ts_record("c01", "creative", 1)) is True
        with RedisPolicyStore(server.url) as s:
            with pytest.raises(PolicyStoreAuthError):
                s.get("c01", "creative")
        with RedisPolicyStore(server.url, password="nope") as s:
            with pytest.raises(PolicyStoreAuthError):
                s.get("c01", "creative")
    finally:
        server.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI to make test certificates")
def test_tls(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    ca, crt, key = certs.ca, certs.server_cert, certs.server_key
    tls = ["--tls-cert-file", str(crt), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca)]
    server = RedisServer(tmp_path, *tls, "--tls-auth-clients", "no", tls_port=True)
    server.start()
    try:
        with RedisPolicyStore(server.url, tls=True, tls_ca_certs=str(ca)) as s:
            assert s.publish(ts_record("c01", "creative", 1)) is True
            assert s.get("c01", "creative").version == 1
        with RedisPolicyStore(server.url, socket_timeout_s=0.5) as s:  # plain TCP to a TLS port
            with pytest.raises(PolicyStoreUnavailable):
                s.get("c01", "creative")
    finally:
        server.stop()


# -- outages -------------------------------------------------------------------------------------


def test_publish_fails_fast_when_redis_is_down(throwaway: RedisServer) -> None:
    with RedisPolicyStore(throwaway.url, socket_timeout_s=0.5) as s:
        s.publish(ts_record("c01", "creative", 1))
        throwaway.stop()
        start = time.monotonic()
        with pytest.raises(PolicyStoreUnavailable, match="unavailable") as info:
            s.publish(ts_record("c01", "creative", 2))
        assert time.monotonic() - start < 1.0
        assert isinstance(info.value, ConnectionError)
        assert "127.0.0.1" in str(info.value)


def test_publish_times_out_when_redis_does_not_answer() -> None:
    # A socket that accepts connections (kernel backlog) but never replies: the read must time out.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        with RedisPolicyStore(url, socket_timeout_s=0.3) as s:
            start = time.monotonic()
            with pytest.raises(PolicyStoreUnavailable):
                s.publish(ts_record("c01", "creative", 1))
            assert time.monotonic() - start < 1.5


def test_pending_publisher_keeps_the_latest_and_flushes_when_redis_is_back(throwaway: RedisServer) -> None:
    with RedisPolicyStore(throwaway.url, socket_timeout_s=0.5) as s:
        pending = PendingPublisher(s, retry_interval_s=0.0)
        assert pending.publish(ts_record("c01", "creative", 1)) is Outcome.WRITTEN
        throwaway.stop()
        outcomes = [pending.publish(ts_record("c01", "creative", v)) for v in (2, 4, 3)]
        outcomes.append(pending.publish(ts_record("c01", "bid", 7)))
        assert outcomes == [Outcome.PENDING, Outcome.PENDING, Outcome.STALE, Outcome.PENDING]
        assert pending.pending == 2
        assert pending.pending_record("c01", "creative").version == 4
        assert pending.flush() == 0  # still down: nothing escapes
        assert isinstance(pending.last_error, PolicyStoreUnavailable)

        throwaway.start()  # same port; the append-only file brings v1 back, and no scripts (NOSCRIPT)
        assert pending.flush() == 2
        assert pending.pending == 0 and pending.last_error is None
        assert s.get("c01", "creative").version == 4
        assert s.get("c01", "bid").version == 7
        assert stream_versions(s) == [1, 4, 7]
        assert pending.publish(ts_record("c01", "creative", 2)) is Outcome.STALE


def test_pending_publisher_waits_retry_interval_while_down(throwaway: RedisServer) -> None:
    now = [0.0]
    with RedisPolicyStore(throwaway.url, socket_timeout_s=0.5) as s:
        pending = PendingPublisher(s, retry_interval_s=30.0, clock=lambda: now[0])
        throwaway.stop()
        assert pending.publish(ts_record("c01", "creative", 1)) is Outcome.PENDING
        assert pending.publish(ts_record("c01", "creative", 2)) is Outcome.PENDING
        assert pending.failures == 1  # the second call did not pay another connection attempt
        throwaway.start()
        now[0] = 31.0
        assert pending.publish(ts_record("c01", "creative", 3)) is Outcome.WRITTEN
        assert s.get("c01", "creative").version == 3


def test_a_full_a_read_only_and_a_refusing_redis_hold_the_policies_and_never_raise(
    throwaway: RedisServer,
) -> None:
    """maxmemory with noeviction (OOM), a replica after a failover (READONLY) and a permission
    taken away (NOPERM): the publisher holds the newest record of each key and writes it once
    Redis takes writes again."""
    admin = redis.Redis(host="127.0.0.1", port=throwaway.port)
    with RedisPolicyStore(throwaway.url, socket_timeout_s=0.5) as s:
        pending = PendingPublisher(s, retry_interval_s=0.0)
        assert pending.publish(ts_record("c01", "creative", 1)) is Outcome.WRITTEN

        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")
        assert pending.publish(ts_record("c01", "creative", 2)) is Outcome.PENDING
        assert isinstance(pending.last_error, PolicyStoreUnavailable)
        assert isinstance(pending.last_error.__cause__, redis.exceptions.OutOfMemoryError)
        admin.config_set("maxmemory", "0")
        assert pending.flush() == 1

        admin.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))  # a master that is not there
        assert pending.publish(ts_record("c01", "creative", 3)) is Outcome.PENDING
        assert isinstance(pending.last_error.__cause__, redis.exceptions.ReadOnlyError)
        admin.execute_command("REPLICAOF", "NO", "ONE")
        assert pending.flush() == 1
        assert s.get("c01", "creative").version == 3

    admin.execute_command("ACL", "SETUSER", "job", "on", ">pw", "~other:*", "&*", "+@all")
    with RedisPolicyStore(throwaway.url, username="job", password="pw", socket_timeout_s=0.5) as s:
        pending = PendingPublisher(s, retry_interval_s=0.0)
        assert pending.publish(ts_record("c01", "creative", 4)) is Outcome.PENDING
        assert isinstance(pending.last_error, PolicyStoreAuthError)
        admin.execute_command("ACL", "SETUSER", "job", "~adloop:*")
        assert pending.flush() == 1
    assert admin.hget("adloop:policy:c01:creative", "version") == b"4"
    admin.close()
