"""The start-up check: can these credentials reach the brokers and do what the job will do?

A job whose Kafka credentials are wrong does not fail on Flink: its sources and sinks retry, the
restart strategy restarts them, and the cause sits deep in a TaskManager log. So before the job
is planned, :func:`check_kafka` connects with the same client properties (through librdkafka)
and fails within seconds with one message that names the brokers and what failed:

- the connection: TLS handshake (an untrusted certificate, either way) or SASL authentication;
- the topics: READ on every input topic, WRITE on every output topic (a topic the brokers do not
  know is a warning: brokers that create topics on first use are common);
- the consumer group: READ;
- the transactional ids, when the sinks are exactly-once: a transactional producer is initialised
  under each prefix, which needs WRITE on the prefix's transactional ids.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from connect.secrets import mask

__all__ = ["KafkaAccessError", "check_kafka"]

log = logging.getLogger(__name__)

_LISTENER_ERRORS = ("_AUTHENTICATION", "_SSL", "SASL", "SSL handshake", "certificate", "_TRANSPORT")


class KafkaAccessError(RuntimeError):
    """The brokers could not be reached, or refused the credentials or a permission."""


def _fail(where: str, what: str, secrets: list[str]) -> KafkaAccessError:
    return KafkaAccessError(mask(f"Kafka at {where}: {what}", secrets))


def check_kafka(
    settings: Mapping[str, Any],
    *,
    read_topics: Iterable[str] = (),
    write_topics: Iterable[str] = (),
    group_id: str | None = None,
    transactional_ids: Iterable[str] = (),
    timeout_s: float = 15.0,
    secrets: list[str] | None = None,
) -> list[str]:
    """Check ``settings`` (librdkafka, ``bootstrap.servers`` included); returns the warnings.

    Raises :class:`KafkaAccessError` naming the brokers and what failed; ``secrets`` are masked
    out of every message.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    hidden = list(secrets or [])
    where = str(settings.get("bootstrap.servers", "?"))
    protocol = str(settings.get("security.protocol", "PLAINTEXT"))
    where_what = f"{where} ({protocol})"
    errors: list[str] = []

    def on_error(err: Any) -> None:
        errors.append(f"{err.name()}: {err.str()}")

    client_settings: dict[str, Any] = {**settings, "error_cb": on_error, "log_level": 0}
    admin = AdminClient(client_settings)
    deadline = time.monotonic() + timeout_s
    connected = False
    while time.monotonic() < deadline:
        admin.poll(0)  # serves error_cb
        listener_errors = [e for e in errors if any(k in e for k in _LISTENER_ERRORS)]
        if any("_AUTHENTICATION" in e or "SASL" in e for e in listener_errors):
            raise _fail(where_what, f"authentication failed: {listener_errors[-1]}", hidden)
        if any("_SSL" in e or "SSL handshake" in e or "certificate" in e for e in listener_errors):
            raise _fail(where_what, f"TLS handshake failed: {listener_errors[-1]}", hidden)
        try:
            metadata = admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
        except KafkaException:
            continue
        if metadata.brokers:
            connected = True
            break
    if not connected:
        seen = f"; last error: {errors[-1]}" if errors else ""
        raise _fail(where_what, f"no broker answered within {timeout_s:g} s{seen}", hidden)

    warnings: list[str] = []
    wanted: dict[str, set[str]] = {}
    for topic in read_topics:
        wanted.setdefault(topic, set()).add("READ")
    for topic in write_topics:
        wanted.setdefault(topic, set()).add("WRITE")
    if wanted:
        warnings += _check_topics(admin, wanted, where_what, deadline, hidden)
    if group_id:
        warnings += _check_group(admin, group_id, where_what, deadline, hidden)
    for transactional_id in transactional_ids:
        _check_transactions(settings, transactional_id, where_what, deadline, hidden)
    return warnings


def _remaining(deadline: float) -> float:
    return max(1.0, deadline - time.monotonic())


def _check_topics(admin, wanted: dict[str, set[str]], where: str, deadline: float, hidden) -> list[str]:
    from confluent_kafka import KafkaException, TopicCollection

    futures = admin.describe_topics(
        TopicCollection(sorted(wanted)),
        request_timeout=_remaining(deadline),
        include_authorized_operations=True,
    )
    warnings = []
    for topic, future in futures.items():
        try:
            description = future.result(timeout=_remaining(deadline))
        except KafkaException as exc:
            err = exc.args[0]
            name = err.name() if hasattr(err, "name") else str(err)
            if "AUTHORIZATION" in name:
                raise _fail(
                    where,
                    f"permission denied on topic {topic!r}: needs {'/'.join(sorted(wanted[topic]))} "
                    f"(and DESCRIBE) for this principal ({name})",
                    hidden,
                ) from None
            if "UNKNOWN_TOPIC" in name:
                warnings.append(f"topic {topic!r} does not exist on {where} (yet)")
                continue
            raise _fail(where, f"describing topic {topic!r} failed: {err}", hidden) from None
        allowed = {op.name for op in (description.authorized_operations or [])}
        if description.authorized_operations is not None and "ALL" not in allowed:
            missing = sorted(wanted[topic] - allowed)
            if missing:
                raise _fail(
                    where,
                    f"permission denied on topic {topic!r}: needs {'/'.join(missing)} for this "
                    f"principal, which has {sorted(allowed) or 'none'}",
                    hidden,
                )
    return warnings


def _check_group(admin, group_id: str, where: str, deadline: float, hidden) -> list[str]:
    """READ on the group; a coordinator still loading or moving is retried until the deadline, and
    an answer other than a refusal is a warning (the group may not exist before the first commit)."""
    from confluent_kafka import KafkaException

    while True:
        future = admin.describe_consumer_groups(
            [group_id], request_timeout=_remaining(deadline), include_authorized_operations=True
        )[group_id]
        try:
            description = future.result(timeout=_remaining(deadline))
            break
        except KafkaException as exc:
            err = exc.args[0]
            name = err.name() if hasattr(err, "name") else str(err)
            if "AUTHORIZATION" in name:
                raise _fail(
                    where, f"permission denied on consumer group {group_id!r}: needs READ ({name})", hidden
                ) from None
            if "COORDINATOR" in name and time.monotonic() < deadline - 1.0:
                time.sleep(0.5)
                continue
            return [f"consumer group {group_id!r} could not be described on {where}: {name}"]
    allowed = {op.name for op in (description.authorized_operations or [])}
    if allowed and not allowed & {"READ", "ALL"}:
        raise _fail(
            where,
            f"permission denied on consumer group {group_id!r}: needs READ, has {sorted(allowed)}",
            hidden,
        )
    return []


def _check_transactions(settings, transactional_id: str, where: str, deadline: float, hidden) -> None:
    from confluent_kafka import KafkaException, Producer

    probe = f"{transactional_id}-check"
    producer = Producer({**settings, "transactional.id": probe, "log_level": 0})
    try:
        producer.init_transactions(_remaining(deadline))
    except KafkaException as exc:
        err = exc.args[0]
        name = err.name() if hasattr(err, "name") else str(err)
        what = (
            f"permission denied on transactional ids {transactional_id!r}*: needs WRITE (a PREFIXED "
            f"ACL) for the exactly-once sinks ({name})"
            if "AUTHORIZATION" in name
            else f"initialising a transaction under {transactional_id!r} failed: {err}"
        )
        raise _fail(where, what, hidden) from None
    finally:
        producer.flush(0)
