"""Small Kafka helpers for the demo, tests and benchmarks: create, read back and delete topics."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def client_settings(bootstrap: str, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """librdkafka settings: ``bootstrap`` plus ``config`` (a secured cluster's, from
    ``KafkaConfig.librdkafka()``)."""
    return {"bootstrap.servers": bootstrap, "log_level": 0, **(config or {})}


def admin(bootstrap: str, config: Mapping[str, Any] | None = None) -> AdminClient:
    return AdminClient(client_settings(bootstrap, config))


def create_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 2,
    timeout_s: float = 30.0,
    config: Mapping[str, Any] | None = None,
) -> None:
    """Create topics (existing ones are left alone) and wait until the broker reports them."""
    names = list(names)
    client = admin(bootstrap, config)  # keep a reference: the futures fail if the client is collected
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


def delete_topics(
    bootstrap: str, names: Iterable[str], timeout_s: float = 30.0, config: Mapping[str, Any] | None = None
) -> None:
    names = list(names)
    if not names:
        return
    client = admin(bootstrap, config)
    for future in client.delete_topics(names, request_timeout=timeout_s).values():
        try:
            future.result(timeout=timeout_s)
        except KafkaException:
            pass  # already gone


def end_offsets(
    bootstrap: str, topic: str, timeout_s: float = 10.0, config: Mapping[str, Any] | None = None
) -> dict[int, int]:
    consumer = Consumer({**client_settings(bootstrap, config), "group.id": "adloop-offsets"})
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


def committed_offsets(
    bootstrap: str,
    group_id: str,
    topic: str,
    timeout_s: float = 10.0,
    config: Mapping[str, Any] | None = None,
) -> dict[int, int]:
    """The offsets ``group_id`` has committed on ``topic``, by partition (-1 where none); a Flink
    Kafka source commits its position there when a checkpoint completes."""
    partitions = end_offsets(bootstrap, topic, timeout_s, config)
    settings = {**client_settings(bootstrap, config), "group.id": group_id, "enable.auto.commit": False}
    consumer = Consumer(settings)
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout_s)
        return {tp.partition: tp.offset for tp in committed}
    finally:
        consumer.close()


def read_all(
    bootstrap: str, topic: str, timeout_s: float = 60.0, config: Mapping[str, Any] | None = None
) -> list[bytes]:
    """Every committed value in ``topic`` up to its end offsets at call time, in partition order.

    Reads with read_committed: records of open or aborted transactions are not returned, and the
    transactions' commit markers take offsets of their own, so a partition is done when the
    consumer's position reaches the end offset, not when a record at ``end - 1`` comes."""
    ends = end_offsets(bootstrap, topic, config=config)
    remaining = {p: end for p, end in ends.items() if end > 0}
    consumer = Consumer(
        {
            **client_settings(bootstrap, config),
            "group.id": f"adloop-read-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in remaining])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while remaining and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                values.append(msg.value())
            if msg is None or msg.error():
                # At the end of what is readable (or idle): done where the position is at the end.
                positions = consumer.position([TopicPartition(topic, p) for p in remaining])
                for tp in positions:
                    if tp.offset >= remaining[tp.partition]:
                        remaining.pop(tp.partition, None)
    finally:
        consumer.close()
    if remaining:
        raise TimeoutError(
            f"reading {topic!r}: partitions {sorted(remaining)} not read to the end in {timeout_s}s"
        )
    return values


def wait_until_stable(
    bootstrap: str,
    topic: str,
    timeout_s: float = 300.0,
    quiet_s: float = 8.0,
    config: Mapping[str, Any] | None = None,
) -> int:
    """Wait until ``topic`` has records and has stopped growing for ``quiet_s`` (a job caught up);
    returns its size."""
    deadline, last, since = time.monotonic() + timeout_s, -1, time.monotonic()
    while time.monotonic() < deadline:
        size = sum(end_offsets(bootstrap, topic, config=config).values())
        if size != last:
            last, since = size, time.monotonic()
        elif size > 0 and time.monotonic() - since >= quiet_s:
            return size
        time.sleep(1.0)
    raise TimeoutError(f"{topic} still growing after {timeout_s}s")


def main(argv: list[str] | None = None) -> int:
    """``python -m scripts.kafka_tools create-topics [--config F] [--partitions N]``: create the
    config's input and output topics on its brokers (existing ones are left alone).
    ``python -m scripts.kafka_tools wait-rows rewards [--min N] [--timeout S]``: wait until one of
    the config's topics holds N committed rows (the job's output lands on checkpoints)."""
    import argparse
    import sys

    from config import app as app_config

    parser = argparse.ArgumentParser(prog="python -m scripts.kafka_tools", description="Kafka helpers")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-topics", help="create the config's input and output topics")
    create.add_argument("--config", default=None, help="YAML app config (default flink-conf/adloop.yaml)")
    create.add_argument("--partitions", type=int, default=2, help="partitions of each new topic (default 2)")
    wait = commands.add_parser("wait-rows", help="wait until a topic of the config holds committed rows")
    wait.add_argument("topic", help="the config's name of the topic: rewards, batches, dlq, late, ...")
    wait.add_argument("--config", default=None, help="YAML app config (default flink-conf/adloop.yaml)")
    wait.add_argument("--min", type=int, default=1, help="rows to wait for (default 1)")
    wait.add_argument("--timeout", type=float, default=600.0, help="seconds (default 600)")
    args = parser.parse_args(argv)
    try:
        cfg = app_config.load(args.config)
        settings = {k: v for k, v in cfg.kafka.librdkafka().items() if k != "bootstrap.servers"}
        if args.command == "wait-rows":
            if not hasattr(cfg.kafka, f"{args.topic}_topic"):
                names = sorted(f.removesuffix("_topic") for f in vars(cfg.kafka) if f.endswith("_topic"))
                raise ValueError(f"wait-rows: expected a topic name among {names}, found {args.topic!r}")
            return _wait_rows(cfg.kafka.bootstrap_servers, cfg.kafka.topic(args.topic), args, settings)
        topics = cfg.kafka.input_topics() + cfg.kafka.output_topics()
        create_topics(cfg.kafka.bootstrap_servers, topics, partitions=args.partitions, config=settings)
    except (ValueError, RuntimeError, TimeoutError) as e:
        print(f"kafka_tools: {e}", file=sys.stderr)
        return 2
    print(f"kafka_tools: {len(topics)} topics on {cfg.kafka.bootstrap_servers}: {', '.join(topics)}")
    return 0


def _wait_rows(bootstrap: str, topic: str, args, config: Mapping[str, Any]) -> int:
    import sys

    deadline = time.monotonic() + args.timeout
    rows = 0
    while time.monotonic() < deadline:
        rows = len(read_all(bootstrap, topic, config=config))
        print(f"kafka_tools: {topic}: {rows} committed rows (waiting for {args.min})", file=sys.stderr)
        if rows >= args.min:
            return 0
        time.sleep(5.0)
    print(f"kafka_tools: {topic}: {rows} committed rows after {args.timeout:g} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
