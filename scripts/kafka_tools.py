"""Small Kafka helpers for the demo, tests and benchmarks: create, read back and delete topics."""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})


def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 2, timeout_s: float = 30.0) -> None:
    """Create topics (existing ones are left alone) and wait until the broker reports them."""
    names = list(names)
    client = admin(bootstrap)  # keep a reference: the futures fail if the client is collected
    futures = client.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names],
        request_timeout=timeout_s,
    )
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as e:
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise RuntimeError(f"creating topic {name!r} on {bootstrap} failed: {e}") from e


def delete_topics(bootstrap: str, names: Iterable[str], timeout_s: float = 30.0) -> None:
    names = list(names)
    if not names:
        return
    client = admin(bootstrap)
    for future in client.delete_topics(names, request_timeout=timeout_s).values():
        try:
            future.result(timeout=timeout_s)
        except KafkaException:
            pass  # already gone


def end_offsets(bootstrap: str, topic: str, timeout_s: float = 10.0) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "adloop-offsets", "log_level": 0})
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
        if meta.error is not None:
            raise RuntimeError(f"topic {topic!r} on {bootstrap}: {meta.error}")
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1]
            for p in meta.partitions
        }
    finally:
        consumer.close()


def read_all(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[bytes]:
    """Every value in ``topic`` up to its end offsets at call time, in partition order."""
    ends = end_offsets(bootstrap, topic)
    remaining = {p: end for p, end in ends.items() if end > 0}
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"adloop-read-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "log_level": 0,
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in remaining])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while remaining and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            values.append(msg.value())
            if msg.offset() + 1 >= remaining.get(msg.partition(), 0):
                remaining.pop(msg.partition(), None)
    finally:
        consumer.close()
    if remaining:
        raise TimeoutError(
            f"reading {topic!r}: partitions {sorted(remaining)} not read to the end in {timeout_s}s"
        )
    return values


def wait_until_stable(bootstrap: str, topic: str, timeout_s: float = 300.0, quiet_s: float = 8.0) -> int:
    """Wait until ``topic`` has records and has stopped growing for ``quiet_s`` (a job caught up);
    returns its size."""
    deadline, last, since = time.monotonic() + timeout_s, -1, time.monotonic()
    while time.monotonic() < deadline:
        size = sum(end_offsets(bootstrap, topic).values())
        if size != last:
            last, since = size, time.monotonic()
        elif size > 0 and time.monotonic() - since >= quiet_s:
            return size
        time.sleep(1.0)
    raise TimeoutError(f"{topic} still growing after {timeout_s}s")
