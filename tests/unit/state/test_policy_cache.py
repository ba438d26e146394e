"""The serving node's pure logic: monotonic cache, staleness, default policy and caps."""

from __future__ import annotations

import pytest

from learners import SafetyCaps
from state.codec import PolicyRecord
from state.policy_cache import PolicyCache, UniformPolicy, capped_bid, is_stale


def rec(version: int, campaign: str = "c01") -> PolicyRecord:
    return PolicyRecord(campaign, "creative", version, "UCB", 1, {"v": version}, 0)


def test_cache_only_moves_up() -> None:
    built: list[int] = []

    def build(record: PolicyRecord) -> UniformPolicy:
        built.append(record.version)
        return UniformPolicy(seed=0)

    cache = PolicyCache(build)
    offers = [3, 1, 3, 4, 2, 9, 9]
    assert [cache.offer(rec(v)) for v in offers] == [True, False, False, True, False, True, False]
    assert cache.versions_seen(("c01", "creative")) == (3, 4, 9)
    assert built == [3, 4, 9]  # policies are rebuilt only for versions that get installed
    assert cache.version(("c01", "creative")) == 9 and cache.version(("c02", "creative")) == 0
    assert (cache.installed, cache.ignored) == (3, 4)
    assert cache.keys() == [("c01", "creative")]


def test_keys_are_independent_and_history_is_bounded() -> None:
    cache = PolicyCache(lambda r: UniformPolicy(seed=0), history=2)
    for v in (1, 2, 3):
        cache.offer(rec(v))
    cache.offer(rec(1, campaign="c02"))
    assert cache.versions_seen(("c01", "creative")) == (2, 3)
    assert cache.versions_seen(("c02", "creative")) == (1,)
    with pytest.raises(ValueError, match="history must be an int >= 1; got 0"):
        PolicyCache(lambda r: UniformPolicy(), history=0)


def test_a_record_that_fails_to_build_leaves_the_cache_unchanged() -> None:
    def build(record: PolicyRecord) -> UniformPolicy:
        if record.version == 2:
            raise ValueError("bad params")
        return UniformPolicy(seed=0)

    cache = PolicyCache(build)
    cache.offer(rec(1))
    with pytest.raises(ValueError, match="bad params"):
        cache.offer(rec(2))
    assert cache.version(("c01", "creative")) == 1
    assert cache.offer(rec(3))


@pytest.mark.parametrize(
    ("updated_at", "now", "stale"),
    [(0, 60_000, False), (0, 60_001, True), (100_000, 50_000, False), (5, 5, False)],
)
def test_staleness(updated_at: int, now: int, stale: bool) -> None:
    assert is_stale(updated_at, now, stale_after_ms=60_000) is stale


def test_uniform_default_policy() -> None:
    arms = ["a", "b", "c", "d"]
    a, b = UniformPolicy(seed=4), UniformPolicy(seed=4)
    picks = [a.choose(None, arms) for _ in range(400)]
    assert picks == [b.choose(None, arms) for _ in range(400)]
    assert {p for _, p in picks} == {0.25}
    counts = {arm: sum(x == arm for x, _ in picks) for arm in arms}
    # Each count is Binomial(400, 1/4): mean 100, sd 8.7; 5 sd either side.
    assert all(56 < c < 144 for c in counts.values()), counts
    with pytest.raises(ValueError, match="arms must be a non-empty sequence"):
        a.choose(None, [])


@pytest.mark.parametrize(
    ("base", "mult", "remaining", "expected"),
    [
        (1.0, "1.5", 10.0, 1.5),
        (3.0, "1", 10.0, 2.0),  # max bid
        (1.0, "1.5", 0.7, 0.7),  # budget left
        (1.0, 1, 0.0, 0.0),  # no budget: no bid
        (0.0, "2", 10.0, 0.0),
    ],
)
def test_capped_bid(base: float, mult: str | int, remaining: float, expected: float) -> None:
    assert capped_bid(SafetyCaps(max_bid=2.0), base, mult, remaining) == pytest.approx(expected)


def test_capped_bid_refuses_bad_inputs() -> None:
    with pytest.raises(ValueError, match="multiplier must be a number or numeric label; got 'high'"):
        capped_bid(SafetyCaps(max_bid=2.0), 1.0, "high", 1.0)
    with pytest.raises(ValueError, match="base_bid must be a finite number >= 0; got -1"):
        capped_bid(SafetyCaps(max_bid=2.0), -1.0, "1", 1.0)
