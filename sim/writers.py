"""Sinks for the simulated stream: Kafka topics or JSON-lines files, one per topic.

Both take records in arrival order (call ``write`` once per chunk), and ``close`` returns the
number of records written per topic (with the prefix, as named on the broker or disk).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol, Self

from sim.noise import SimRecord

# librdkafka logs every failed reconnect; route them to logging (silent unless configured).
_LOG = logging.getLogger(__name__)
_LOG.addHandler(logging.NullHandler())


class Writer(Protocol):
    def write(self, records: Iterable[SimRecord]) -> dict[str, int]: ...

    def close(self) -> dict[str, int]: ...


class _Closing:
    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def close(self) -> dict[str, int]:
        raise NotImplementedError

    def abort(self) -> None:
        """Release resources without the checks of ``close`` (used when unwinding an error)."""


class FileWriter(_Closing):
    """``<directory>/<prefix><topic>.jsonl``, one record value per line; existing files are replaced.

    >>> import tempfile
    >>> from sim.noise import SimRecord
    >>> with tempfile.TemporaryDirectory() as d:
    ...     w = FileWriter(d)
    ...     _ = w.write([SimRecord("ad.clicks", b"i1", b'{"a":1}', 0, 0)])
    ...     w.close()
    {'ad.clicks': 1}
    """

    def __init__(self, directory: str | Path, topic_prefix: str = "") -> None:
        self.directory = Path(directory)
        self.topic_prefix = topic_prefix
        self.directory.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, IO[bytes]] = {}
        self._counts: dict[str, int] = {}

    def path(self, topic: str) -> Path:
        return self.directory / f"{self.topic_prefix}{topic}.jsonl"

    def write(self, records: Iterable[SimRecord]) -> dict[str, int]:
        for r in records:
            name = self.topic_prefix + r.topic
            f = self._files.get(name)
            if f is None:
                f = self._files[name] = self.path(r.topic).open("wb")
            f.write(r.value + b"\n")  # JSON encoders never emit a raw newline inside a value
            self._counts[name] = self._counts.get(name, 0) + 1
        return dict(self._counts)

    def close(self) -> dict[str, int]:
        self.abort()
        return dict(self._counts)

    def abort(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


# librdkafka errors that mean the brokers refuse this client: credentials or certificates.
_REFUSED = ("_AUTHENTICATION", "SSL handshake", "_SSL", "certificate")


class KafkaWriter(_Closing):
    """Produce to ``<topic_prefix><topic>`` with the record key (impression_id / conversion_id).

    The producer is idempotent (no duplicates from retries: the only duplicates on the topic are
    the simulated ones) and batches with a short linger. The broker is contacted at construction:
    if it does not answer within ``timeout_s``, ``ConnectionError`` is raised instead of hanging.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic_prefix: str = "",
        *,
        timeout_s: float = 10.0,
        flush_timeout_s: float = 120.0,
        config: Mapping[str, Any] | None = None,
        partition_of: Callable[[SimRecord], int] | None = None,
    ) -> None:
        """``partition_of`` picks each record's partition (default: the producer's partitioner
        on the record key)."""
        from confluent_kafka import KafkaException, Producer

        self.partition_of = partition_of
        self.bootstrap_servers = bootstrap_servers
        self.topic_prefix = topic_prefix
        self.timeout_s = timeout_s
        self.flush_timeout_s = flush_timeout_s
        self._errors: list[str] = []
        settings: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
            "message.timeout.ms": int(flush_timeout_s * 1000),
            "delivery.report.only.error": True,  # callbacks only for failures: cheap at 100k+/s
            "on_delivery": self._on_delivery,
            "error_cb": self._on_error,
        }
        settings.update(config or {})
        self._producer = Producer(settings, logger=_LOG)
        deadline = time.monotonic() + timeout_s
        while True:
            self._producer.poll(0)  # serves error_cb: a refused login or handshake shows at once
            refused = [e for e in self._errors if any(k in e for k in _REFUSED)]
            if refused:
                del self._producer
                raise ConnectionError(
                    f"KafkaWriter: Kafka at {bootstrap_servers!r} refused the connection: {refused[-1]}"
                )
            try:
                self._producer.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
                break
            except KafkaException as exc:
                if time.monotonic() < deadline:
                    continue
                seen = f"; {self._errors[-1]}" if self._errors else ""
                del self._producer  # stop the reconnect attempts now
                raise ConnectionError(
                    f"KafkaWriter: no Kafka broker answered at {bootstrap_servers!r} "
                    f"within {timeout_s:g}s ({exc}{seen})"
                ) from None
        self._counts: dict[str, int] = {}
        self._closed = False

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")

    def _on_error(self, err: Any) -> None:
        self._errors.append(f"producer: {err}")

    def write(self, records: Iterable[SimRecord]) -> dict[str, int]:
        produce, poll = self._producer.produce, self._producer.poll
        for r in records:
            topic = self.topic_prefix + r.topic
            partition = -1 if self.partition_of is None else self.partition_of(r)  # -1: the partitioner
            stalled_since = None
            while True:
                try:
                    produce(topic, value=r.value, key=r.key, partition=partition)
                    break
                except BufferError:  # local queue full: let librdkafka send, but never wait forever
                    stalled_since = stalled_since or time.monotonic()
                    if time.monotonic() - stalled_since > self.flush_timeout_s:
                        raise TimeoutError(
                            f"KafkaWriter: producer queue stayed full for {self.flush_timeout_s:g}s "
                            f"writing to {topic!r} at {self.bootstrap_servers!r}; errors: {self._errors[:3]}"
                        ) from None
                    poll(0.05)
            self._counts[topic] = self._counts.get(topic, 0) + 1
        poll(0)
        return dict(self._counts)

    def close(self) -> dict[str, int]:
        if self._closed:
            return dict(self._counts)
        self._closed = True
        left = self._producer.flush(self.flush_timeout_s)
        if left:
            raise TimeoutError(
                f"KafkaWriter: {left} records not delivered to {self.bootstrap_servers!r} "
                f"within {self.flush_timeout_s:g}s; errors: {self._errors[:3]}"
            )
        failed = [e for e in self._errors if not e.startswith("producer:")]
        if failed:
            raise RuntimeError(f"KafkaWriter: {len(failed)} records failed delivery, e.g. {failed[:3]}")
        return dict(self._counts)

    def abort(self) -> None:
        self._closed = True
        self._producer.purge()  # drop what is queued so an unwinding run never blocks on it
        self._producer.flush(0)
