"""Kafka client properties: one map in the config, rendered for the job's tables and for librdkafka.

``kafka.properties`` in ``adloop.yaml`` holds Kafka's own (Java) client property names, the ones
Kafka's documentation uses: ``security.protocol``, ``sasl.mechanism``, ``sasl.jaas.config``,
``ssl.truststore.*``, ``ssl.keystore.*``... Every Kafka source and sink of the job gets all of them
(as ``properties.<name>`` table options). The project's Python clients (the simulator's writer,
``scripts/kafka_tools.py``, the start-up check) run on librdkafka, whose names differ; they get
the translation of the security settings below, and :func:`librdkafka_settings` lists what it
could not translate so nothing is dropped silently.

Trust and key stores for the Python clients must be PEM files (``ssl.truststore.type: PEM``,
``ssl.keystore.type: PEM``) or PKCS12 key stores: librdkafka reads no JKS.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "JOB_MANAGED",
    "client_settings_from_file",
    "LibrdkafkaSettings",
    "flink_table_options",
    "librdkafka_settings",
    "validate_properties",
]

# The Flink Kafka connector jar relocates Kafka's classes; a class named in a property (a JAAS
# login module, a callback handler) must carry the relocated package to be found.
_SHADED = "org.apache.flink.kafka.shaded."
_KAFKA_CLASS = re.compile(r"(?<![\w.])org\.apache\.kafka\.")

# Properties the job sets from other keys; setting them here would be silently overridden.
JOB_MANAGED = {
    "bootstrap.servers": "kafka.bootstrap_servers",
    "group.id": "kafka.group_id",
    "transactional.id": "kafka.transactional_id_prefix",
    "auto.offset.reset": "kafka.startup_mode",
    "isolation.level": "(always read_committed)",
    "enable.auto.commit": "(offsets are committed on checkpoints)",
    "key.serializer": "(set by the connector)",
    "value.serializer": "(set by the connector)",
    "key.deserializer": "(set by the connector)",
    "value.deserializer": "(set by the connector)",
}

# Same meaning and name in librdkafka.
_SAME_NAME = (
    "security.protocol",
    "sasl.mechanism",
    "client.id",
    "ssl.key.password",
    "ssl.cipher.suites",
    "socket.connection.setup.timeout.ms",
)

_JAAS_FIELD = re.compile(r'\b(username|password)\s*=\s*"((?:[^"\\]|\\.)*)"')


def validate_properties(properties: Mapping[str, object], key: str = "kafka.properties") -> dict[str, str]:
    """The map as {name: text}; a non-text value or a property the job manages is a ValueError.

    >>> validate_properties({"security.protocol": "SSL", "request.timeout.ms": 30000})
    {'security.protocol': 'SSL', 'request.timeout.ms': '30000'}
    >>> try:
    ...     validate_properties({"bootstrap.servers": "b:9093"})
    ... except ValueError as e:
    ...     print(e)  # doctest: +ELLIPSIS
    config key 'kafka.properties.bootstrap.servers': expected it set through kafka.bootstrap_servers, ...
    """
    if not isinstance(properties, Mapping):
        raise ValueError(
            f"config key {key!r}: expected a mapping of Kafka client properties, found {properties!r}"
        )
    out: dict[str, str] = {}
    for name, value in properties.items():
        if not isinstance(name, str) or not name or name != name.strip():
            raise ValueError(f"config key {key!r}: expected property names, found {name!r}")
        if name in JOB_MANAGED:
            raise ValueError(
                f"config key '{key}.{name}': expected it set through {JOB_MANAGED[name]}, found it in {key}"
            )
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, str | int | float):
            raise ValueError(f"config key '{key}.{name}': expected a string or number, found {value!r}")
        out[name] = str(value)
    return out


def flink_table_options(properties: Mapping[str, str]) -> dict[str, str]:
    """Table options of Flink's Kafka connector for resolved client ``properties``.

    >>> jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    >>> flink_table_options({"sasl.jaas.config": jaas})["properties.sasl.jaas.config"]
    'org.apache.flink.kafka.shaded.org.apache.kafka.common.security.scram.ScramLoginModule required;'
    """
    return {
        f"properties.{name}": _KAFKA_CLASS.sub(_SHADED + "org.apache.kafka.", value)
        for name, value in properties.items()
    }


@dataclass(frozen=True)
class LibrdkafkaSettings:
    """librdkafka settings translated from Java client properties, and the names left out."""

    settings: dict[str, str]
    skipped: tuple[str, ...]


def librdkafka_settings(properties: Mapping[str, str]) -> LibrdkafkaSettings:
    """Translate resolved Java client ``properties`` into librdkafka's names.

    >>> s = librdkafka_settings({
    ...     "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
    ...     "sasl.jaas.config": 'x.ScramLoginModule required username="job" password="pw";',
    ...     "ssl.truststore.type": "PEM", "ssl.truststore.location": "/ca.pem", "linger.ms": "5"})
    >>> sorted(s.settings.items())  # doctest: +NORMALIZE_WHITESPACE
    [('sasl.mechanism', 'SCRAM-SHA-512'), ('sasl.password', 'pw'), ('sasl.username', 'job'),
     ('security.protocol', 'SASL_SSL'), ('ssl.ca.location', '/ca.pem')]
    >>> s.skipped
    ('linger.ms',)
    """
    props = dict(properties)
    out: dict[str, str] = {}
    used: set[str] = set()

    def take(name: str) -> str | None:
        if name in props:
            used.add(name)
            return props[name]
        return None

    for name in _SAME_NAME:
        value = take(name)
        if value is not None:
            out[name] = value

    jaas = take("sasl.jaas.config")
    if jaas is not None:
        fields = {m.group(1): m.group(2).replace('\\"', '"') for m in _JAAS_FIELD.finditer(jaas)}
        if "username" in fields:
            out["sasl.username"] = fields["username"]
        if "password" in fields:
            out["sasl.password"] = fields["password"]

    algorithm = take("ssl.endpoint.identification.algorithm")
    if algorithm is not None:
        out["ssl.endpoint.identification.algorithm"] = algorithm.lower() or "none"

    trust_type = (take("ssl.truststore.type") or "JKS").upper()
    trust_location = take("ssl.truststore.location")
    trust_pem = take("ssl.truststore.certificates")
    if trust_pem is not None:
        out["ssl.ca.pem"] = trust_pem
    if trust_location is not None:
        if trust_type != "PEM":
            raise ValueError(
                "config key 'kafka.properties.ssl.truststore.type': expected PEM for the project's Python "
                f"clients (librdkafka reads no {trust_type} trust store), found {trust_type}"
            )
        out["ssl.ca.location"] = trust_location
    take("ssl.truststore.password")  # a PEM trust store has none

    key_type = (take("ssl.keystore.type") or "JKS").upper()
    key_location = take("ssl.keystore.location")
    key_password = take("ssl.keystore.password")
    chain, key = take("ssl.keystore.certificate.chain"), take("ssl.keystore.key")
    if chain is not None:
        out["ssl.certificate.pem"] = chain
    if key is not None:
        out["ssl.key.pem"] = key
    if key_location is not None:
        if key_type == "PEM":
            # One PEM file holds the key and the certificate chain; OpenSSL picks each from it.
            out["ssl.certificate.location"] = key_location
            out["ssl.key.location"] = key_location
        elif key_type == "PKCS12":
            out["ssl.keystore.location"] = key_location
            if key_password is not None:
                out["ssl.keystore.password"] = key_password
        else:
            raise ValueError(
                "config key 'kafka.properties.ssl.keystore.type': expected PEM or PKCS12 for the project's "
                f"Python clients (librdkafka reads no {key_type} key store), found {key_type}"
            )
    return LibrdkafkaSettings(out, tuple(sorted(set(props) - used)))


def client_settings_from_file(path: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """librdkafka settings for the ``kafka.properties`` of an app config file (``adloop.yaml``),
    secrets resolved, for tools that take ``--config`` without loading the whole job config."""
    from pathlib import Path

    import yaml

    from connect import secrets

    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ValueError(
            f"config file {path!r}: expected a readable YAML file, found {exc.strerror}"
        ) from None
    properties = validate_properties(((raw.get("kafka") or {}).get("properties")) or {})
    resolved = {}
    for name, value in properties.items():
        if secrets.is_sensitive(name):
            secrets.check_not_plain(f"kafka.properties.{name}", value)
        resolved[name] = secrets.resolve(value, f"kafka.properties.{name}", env)
    return librdkafka_settings(resolved).settings
