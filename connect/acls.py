"""Least privilege: the Kafka ACLs and Redis ACL rules each role needs, rendered from the config
(``python -m scripts.acls`` prints or applies them; docs/security.md shows them).

Roles:

- ``job`` (the feedback job): reads the input topics and commits offsets for its group; writes the
  output topics; owns the transactional ids under its prefix (exactly-once sinks). In Redis it runs
  the publish, release and rollout scripts on its key prefix, reads its keys' holds and history,
  and publishes on its channel; the operator's CLI (``python -m rollout``) runs as this user (in
  Kafka, its look-up of old versions on the policy-updates topic needs READ there, as the
  ``reader`` role has).
- ``producer`` (serving nodes' event loggers, the simulator): writes the input topics.
- ``reader`` (the SQL client, data engineers' consumers): reads the output topics, in the groups
  ``sql-client`` and ``adloop-read-*``.
- ``serving`` (Redis only): reads policies and the notification stream of its prefix, subscribes
  to its channel; cannot write.

"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["KAFKA_ROLES", "REDIS_ROLES", "KafkaAcl", "apply_kafka_acls", "kafka_acls", "redis_rules"]

KAFKA_ROLES = ("job", "producer", "reader")
REDIS_ROLES = ("job", "serving")

# Commands each Redis role runs (state/policy_store.py). redis-py also sends CLIENT SETINFO on
# connect and carries on when it is refused, so it is not granted.
_REDIS_COMMANDS = {
    # The job's user also serves the operator's CLI (python -m rollout): rollbacks, pins, rollouts.
    "job": (
        "ping",
        "evalsha",
        "script|load",
        "hget",
        "hgetall",
        "hset",
        "hdel",
        "del",
        "xadd",
        "xrevrange",
        "publish",
    ),
    "serving": (
        "ping",
        "hget",
        "hgetall",
        "scan",
        "xread",
        "xrange",
        "xrevrange",
        "subscribe",
        "unsubscribe",
    ),
}


@dataclass(frozen=True, order=True)
class KafkaAcl:
    """One ALLOW binding: ``operation`` on ``resource_type`` ``name`` (``pattern`` LITERAL or
    PREFIXED), for a principal given when rendered."""

    resource_type: str  # TOPIC | GROUP | TRANSACTIONAL_ID
    name: str
    pattern: str  # LITERAL | PREFIXED
    operation: str  # READ | WRITE | DESCRIBE

    def command(self, principal: str, bootstrap: str) -> str:
        flag = {"TOPIC": "--topic", "GROUP": "--group", "TRANSACTIONAL_ID": "--transactional-id"}
        return (
            f"kafka-acls.sh --bootstrap-server {bootstrap} --add --allow-principal {principal} "
            f"--operation {self.operation.capitalize()} {flag[self.resource_type]} {self.name} "
            f"--resource-pattern-type {self.pattern.lower()}"
        )


def kafka_acls(cfg, role: str) -> list[KafkaAcl]:
    """The bindings ``role`` needs with the topics, group and transactional prefix of ``cfg``
    (an :class:`config.app.AppConfig`)."""
    kafka = cfg.kafka
    inputs = kafka.input_topics()
    outputs = kafka.output_topics()
    if role == "job":
        acls = [KafkaAcl("TOPIC", t, "LITERAL", "READ") for t in inputs]
        acls += [KafkaAcl("TOPIC", t, "LITERAL", "WRITE") for t in outputs]
        acls.append(KafkaAcl("GROUP", kafka.group_id, "LITERAL", "READ"))
        if kafka.delivery_guarantee == "exactly-once":
            acls.append(
                KafkaAcl("TRANSACTIONAL_ID", f"{kafka.transactional_id_prefix}.", "PREFIXED", "WRITE")
            )
        return acls
    if role == "producer":
        return [KafkaAcl("TOPIC", t, "LITERAL", "WRITE") for t in inputs]
    if role == "reader":
        acls = [KafkaAcl("TOPIC", t, "LITERAL", "READ") for t in outputs]
        acls.append(KafkaAcl("GROUP", "sql-client", "LITERAL", "READ"))
        acls.append(KafkaAcl("GROUP", "adloop-read-", "PREFIXED", "READ"))
        return acls
    raise ValueError(f"kafka role: expected one of {KAFKA_ROLES}, found {role!r}")


def apply_kafka_acls(
    settings: dict, principal: str, acls: Sequence[KafkaAcl], timeout_s: float = 15.0
) -> None:
    """Create ``acls`` for ``principal`` through the Admin API (librdkafka ``settings`` of a
    principal allowed to alter ACLs)."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
    )

    bindings = [
        AclBinding(
            ResourceType[acl.resource_type],
            acl.name,
            ResourcePatternType[acl.pattern],
            principal,
            "*",
            AclOperation[acl.operation],
            AclPermissionType.ALLOW,
        )
        for acl in acls
    ]
    admin = AdminClient({**settings, "log_level": 0})
    for binding, future in admin.create_acls(bindings, request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except Exception as exc:  # noqa: BLE001 - named and re-raised
            raise RuntimeError(f"creating the ACL {binding} failed: {exc}") from None


def redis_rules(key_prefix: str, role: str) -> list[str]:
    """The ACL rules of ``role`` on ``key_prefix``, after ``ACL SETUSER <user> reset on >password``.

    >>> " ".join(redis_rules("adloop", "serving"))  # doctest: +ELLIPSIS
    'resetkeys resetchannels -@all %R~adloop:* &adloop:* +ping +hget +hgetall +scan ...'
    """
    if role not in _REDIS_COMMANDS:
        raise ValueError(f"redis role: expected one of {REDIS_ROLES}, found {role!r}")
    keys = f"~{key_prefix}:*" if role == "job" else f"%R~{key_prefix}:*"
    return [
        "resetkeys",
        "resetchannels",
        "-@all",
        keys,
        f"&{key_prefix}:*",
        *(f"+{c}" for c in _REDIS_COMMANDS[role]),
    ]
