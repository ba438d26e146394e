"""10,000 mutated payloads mixed into a simulated day, through the real job with no restart allowed.

Every input record is accounted for exactly once:
- a dead letter, found by its topic, partition and offset, with a reason;
- or a late row;
- or, for an impression, initial reward rows for each of its decisions.
Every mutation that cannot be valid JSON of the contract (truncation, deep nesting, numbers beyond a
double, oversized arrays, bad UTF-8, a repeated key) must be a dead letter. A byte flip may leave a
valid event, which is then accounted for like any other. Each mutant carries fresh ids, so a valid
mutant can neither be taken for its original by the deduplication nor click on a real impression.
"""

from __future__ import annotations

import json
import random
from collections import Counter

from confluent_kafka import Producer

from config import app as app_config
from contract import events
from jobs import feedback_job
from scripts import kafka_tools
from sim.config import SimConfig
from sim.simulator import Simulator

MUTANTS = 10_000
SURELY_BAD = ("truncate", "nest", "huge_number", "huge_array", "bad_utf8", "repeat_key")
KINDS = ("flip", "flip", "flip", *SURELY_BAD)


def _fresh_ids(value: bytes, n: int) -> bytes:
    doc = json.loads(value)
    for key in ("event_id", "impression_id", "conversion_id"):
        if key in doc:
            doc[key] = f"fz{n}-{key[0]}"
    return json.dumps(doc).encode()


def mutate(value: bytes, kind: str, rng: random.Random) -> bytes:
    if kind == "flip":
        data = bytearray(value)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == "truncate":
        return value[: rng.randrange(1, len(value) - 1)]
    if kind == "nest":
        depth = rng.choice((50, 2_000, 20_000))
        return b'{"schema_version": 1, "x": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == "huge_number":
        return value.replace(b'"ts": ', b'"ts": 1' + b"9" * rng.choice((30, 400)) + b"e999", 1)
    if kind == "huge_array":
        return value[:-1] + b', "extra": [' + b"1.5, " * 20_000 + b"1]}"
    if kind == "bad_utf8":
        cut = rng.randrange(1, len(value) - 1)
        return value[:cut] + b"\xff\xfe" + value[cut:]
    if kind == "repeat_key":
        return value[:-1] + b', "ts": 1}'
    raise ValueError(kind)


def test_ten_thousand_mutated_payloads_stop_nothing_and_every_record_is_accounted_for(
    services, unique_prefix
):
    bootstrap = services.kafka_bootstrap
    cfg = app_config.AppConfig().replace(
        kafka={"bootstrap_servers": bootstrap, "topic_prefix": unique_prefix, "bounded": True,
               "group_id": f"{unique_prefix}job"},
        job={"learners": False},
    )  # fmt: skip
    topics = cfg.kafka.input_topics() + cfg.kafka.output_topics()
    kafka_tools.create_topics(bootstrap, topics)

    day = SimConfig(days=1, n_users=1_000, requests_per_day=3_000, malformed_rate=0.0)
    records = [r for chunk in Simulator(day).run() for r in chunk.records]
    rng = random.Random(20261206)
    # Each mutant follows its original, and every record is written with its event time as its
    # Kafka timestamp, as a live producer would: a ts that a flip moved more than
    # ingest.max_future_ms ahead is then a dead letter and never moves event time.
    of = Counter(rng.randrange(len(records)) for _ in range(MUTANTS))
    stream: list[tuple[str, bytes, str | None, int]] = []
    for i, r in enumerate(records):
        stream.append((r.topic, r.value, None, r.ts))
        for _ in range(of[i]):
            kind = rng.choice(KINDS)
            stream.append((r.topic, mutate(_fresh_ids(r.value, len(stream)), kind, rng), kind, r.ts))

    where: dict[tuple[str, int, int], int] = {}  # (topic, partition, offset) -> index in sent

    def delivered(index: int):
        def note(err, msg) -> None:
            if err is None:
                where[(msg.topic(), msg.partition(), msg.offset())] = index

        return note

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "message.max.bytes": 2_000_000,
                         "log_level": 0})  # fmt: skip
    sent: list[tuple[str, bytes, str | None]] = []
    for topic, value, kind, ts in stream:
        index = len(sent)
        sent.append((topic, value, kind))
        producer.produce(unique_prefix + topic, value, timestamp=ts, on_delivery=delivered(index))
        producer.poll(0)
    assert producer.flush(60) == 0
    assert len(where) == len(sent)
    try:
        feedback_job.run(cfg, flink_overrides={"restart-strategy.type": "none"})  # raises if the job fails
        dlq = [json.loads(v) for v in kafka_tools.read_all(bootstrap, cfg.kafka.topic("dlq"))]
        late = [json.loads(v) for v in kafka_tools.read_all(bootstrap, cfg.kafka.topic("late"))]
        rewards = [json.loads(v) for v in kafka_tools.read_all(bootstrap, cfg.kafka.topic("rewards"))]
    finally:
        kafka_tools.delete_topics(bootstrap, topics)

    dead = Counter((row["src_topic"], row["src_partition"], row["src_offset"]) for row in dlq)
    behind = Counter((row["src_topic"], row["src_partition"], row["src_offset"]) for row in late)
    assert (
        max(dead.values()) == 1 and max(behind.values(), default=1) == 1 and not dead.keys() & behind.keys()
    )
    assert all(row["reason"] for row in dlq) and all(len(row["payload"]) <= 4_096 for row in dlq)
    rewarded = Counter(row["impression_id"] for row in rewards if row["kind"] == "initial")

    unaccounted, valid_mutants = [], 0
    for (topic, partition, offset), index in where.items():
        coordinates = (topic, partition, offset)
        _, value, kind = sent[index]
        topic = topic[len(unique_prefix) :]
        if coordinates in dead:
            continue
        assert kind not in SURELY_BAD, (kind, value[:200])  # a surely bad payload got through
        if coordinates in behind:
            continue
        valid_mutants += kind is not None
        if topic == events.IMPRESSIONS:
            doc = json.loads(value)
            if rewarded[doc["impression_id"]] < len(doc["decisions"]):
                unaccounted.append(doc["event_id"])
    # Impressions the simulator duplicated are rewarded once, by their first copy.
    assert not unaccounted, unaccounted[:5]
    # Only the simulator's late events (and the valid mutants' out-of-order ones) are late.
    assert len(late) <= sum(r.late for r in records) + valid_mutants + 10
    surely_bad = sum(1 for _, _, kind in sent if kind in SURELY_BAD)
    assert len(dead) >= surely_bad
    reasons = Counter(r["reason"].split(":")[0] for r in dlq).most_common(8)
    print(
        f"fuzz: {len(sent)} records, {MUTANTS} mutants ({valid_mutants} still valid), {len(dlq)} dead "
        f"letters, {len(late)} late, {sum(rewarded.values())} initial reward rows; reasons {reasons}"
    )
