"""The noise on the stream matches the knobs and is fully recorded in the ground truth."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from contract.events import TOPICS
from sim.noise import FUTURE_MS, KINDS_BY_TOPIC, MALFORMED_KINDS, malform
from sim.validate import check_record, clean_violations


def _within(observed: int, n: int, p: float, k: float = 5.0) -> bool:
    """|observed - n p| within k binomial standard errors (k = 5: false alarm < 1e-6)."""
    return abs(observed - n * p) <= k * math.sqrt(n * p * (1 - p)) + 1


def test_every_clean_record_passes_the_contract(noisy_run):
    assert clean_violations(noisy_run.records) == []


def test_every_malformed_kind_appears_and_fails_validation(noisy_run):
    bad = [r for r in noisy_run.records if r.malformed is not None]
    assert {r.malformed for r in bad} == set(MALFORMED_KINDS)
    for r in bad:
        assert r.malformed in KINDS_BY_TOPIC[r.topic]
        assert check_record(r) is not None, (r.malformed, r.value)
    nan = next(r for r in bad if r.malformed == "nan_money")
    assert b"NaN" in nan.value


def test_malformed_records_are_listed_in_the_truth_with_their_kind(noisy_run):
    bad = [r for r in noisy_run.records if r.malformed is not None]
    logged = noisy_run.sim.noise_log.malformed
    assert Counter((r.topic, r.malformed, r.value.decode()) for r in bad) == Counter(
        (m.topic, m.kind, m.value) for m in logged
    )
    clean_ids = set()
    for topic in TOPICS:
        clean_ids |= set(noisy_run.unique(topic))
    for m in logged:
        assert m.source_event_id in clean_ids
        assert m.event_id is None or m.event_id not in clean_ids  # never collides with a clean event


def test_noise_counts_match_the_knobs(noisy_run):
    cfg, counts = noisy_run.config, noisy_run.sim.truth.counts
    n = sum(counts[f"emitted.{t}"] for t in TOPICS)
    log = noisy_run.sim.noise_log
    assert n > 20_000
    assert _within(len(log.late), n, cfg.late_rate)
    assert _within(sum(log.duplicated.values()), n - len(log.late), cfg.duplicate_rate)
    assert _within(len(log.malformed), n, cfg.malformed_rate)
    assert len(noisy_run.records) == n + sum(log.duplicated.values()) + len(log.malformed)


def test_duplicates_resend_the_same_bytes_after_the_original(noisy_run):
    by_id: dict[str, list] = {}
    for r in noisy_run.clean():
        by_id.setdefault(json.loads(r.value)["event_id"], []).append(r)
    duplicated = noisy_run.sim.noise_log.duplicated
    assert {eid for eid, rs in by_id.items() if len(rs) > 1} == set(duplicated)
    for eid, copies in duplicated.items():
        first, *again = by_id[eid]
        assert len(again) == copies and not first.duplicate
        assert all(r.value == first.value and r.key == first.key and r.duplicate for r in again)


def test_arrival_is_shuffled_within_the_bound_and_late_records_fall_behind_the_watermark(noisy_run):
    bound, late_by = noisy_run.config.out_of_order_ms, noisy_run.config.late_by_ms
    records = noisy_run.clean()
    assert [r.arrival_ms for r in records] == sorted(r.arrival_ms for r in records)
    inversions = sum(a.ts > b.ts for a, b in zip(records, records[1:], strict=False))
    assert inversions > 100  # really out of order
    late_ids = set(noisy_run.sim.noise_log.late)
    watermark = -math.inf  # a bounded-out-of-orderness watermark: max ts seen - bound
    late_seen = 0
    for r in records:
        if r.late:
            late_seen += 1
            assert r.arrival_ms - r.ts >= bound + late_by
            assert r.ts < watermark, "a late record must be behind the watermark"
            assert json.loads(r.value)["event_id"] in late_ids
        else:
            assert 0 <= r.arrival_ms - r.ts <= bound
            assert r.ts >= watermark, "an on-time record must never be late"
        watermark = max(watermark, r.ts - bound)
    assert late_seen == len(late_ids) > 0


@pytest.mark.parametrize("topic", TOPICS)
def test_malform_breaks_every_applicable_kind_for_every_topic(noisy_run, topic):
    import random

    from sim.validate import check_value

    record = next(r for r in noisy_run.clean(topic))
    payload = json.loads(record.value)
    for kind in KINDS_BY_TOPIC[topic]:
        value = malform(kind, topic, payload, random.Random(0))
        assert check_value(topic, value, max_ts_ms=payload["ts"] + FUTURE_MS // 2) is not None, kind
    with pytest.raises(ValueError, match="does not apply to ad.clicks"):
        malform("nan_money", "ad.clicks", payload, random.Random(0))
