"""Typed, validated application config for the jobs: ``flink-conf/adloop.yaml`` + environment.

No Flink import here, so the config is testable and usable by the demo and the simulator.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from attribution.config import AttributionConfig, RewardConfig
from connect import secrets
from connect.kafka_props import flink_table_options, librdkafka_settings, validate_properties
from learners.campaigns import CampaignTable
from learners.registry import LearnerSpecs

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILE = ROOT / "flink-conf" / "adloop.yaml"
ENV_PREFIX = "ADLOOP_"

_STARTUP_MODES = ("earliest-offset", "latest-offset", "group-offsets")
_DELIVERY = ("exactly-once", "at-least-once")


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    impressions_topic: str = "ad.impressions"
    clicks_topic: str = "ad.clicks"
    conversions_topic: str = "ad.conversions"
    auctions_topic: str = "ad.auctions"
    rewards_topic: str = "ad.rewards"
    batches_topic: str = "ad.learner.batches"
    policy_updates_topic: str = "ad.policy.updates"
    drift_topic: str = "ad.learner.drift"
    late_topic: str = "ad.late"
    dlq_topic: str = "ad.dlq"
    group_id: str = "adloop-feedback"
    startup_mode: str = "earliest-offset"
    bounded: bool = False
    # The job's Kafka sinks (rewards, micro-batches, policy updates, late rows, dead letters).
    producer_linger_ms: int = 20
    producer_batch_bytes: int = 262_144
    # Any Kafka (Java) client property, for every source and sink: security.protocol, sasl.*,
    # ssl.*... (connect/kafka_props.py). Secrets as ${env:NAME} or ${file:PATH} references.
    properties: dict[str, str] = field(default_factory=dict)
    # Rewards, micro-batches and policy updates: exactly-once (Kafka transactions committed on
    # checkpoints, read with read_committed) or at-least-once. Late rows and dead letters are
    # always at-least-once.
    delivery_guarantee: str = "exactly-once"
    transactional_id_prefix: str = "adloop-feedback"  # + ".<sink>"; unique per job on a cluster
    transaction_timeout_ms: int = 900_000  # within the brokers' transaction.max.timeout.ms
    connect_timeout_ms: int = 15_000  # the start-up check of the brokers, credentials and ACLs

    def __post_init__(self) -> None:
        object.__setattr__(self, "properties", validate_properties(self.properties))
        for name, value in self.properties.items():
            if secrets.is_sensitive(name):
                secrets.check_not_plain(f"kafka.properties.{name}", value)
        if self.delivery_guarantee not in _DELIVERY:
            _bad("kafka.delivery_guarantee", f"one of {_DELIVERY}", self.delivery_guarantee)
        if not self.transactional_id_prefix or any(c.isspace() for c in self.transactional_id_prefix):
            _bad(
                "kafka.transactional_id_prefix",
                "a non-empty name without spaces",
                self.transactional_id_prefix,
            )
        if not isinstance(self.transaction_timeout_ms, int) or not 60_000 <= self.transaction_timeout_ms:
            _bad(
                "kafka.transaction_timeout_ms",
                "an integer >= 60000 (milliseconds)",
                self.transaction_timeout_ms,
            )
        if not isinstance(self.connect_timeout_ms, int) or self.connect_timeout_ms < 1000:
            _bad("kafka.connect_timeout_ms", "an integer >= 1000 (milliseconds)", self.connect_timeout_ms)
        _non_negative("kafka.producer_linger_ms", self.producer_linger_ms)
        if not isinstance(self.producer_batch_bytes, int) or self.producer_batch_bytes < 1024:
            _bad("kafka.producer_batch_bytes", "an integer >= 1024 (bytes)", self.producer_batch_bytes)
        for host_port in self.bootstrap_servers.split(","):
            host, _, port = host_port.rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                _bad("kafka.bootstrap_servers", "host:port[,host:port...]", self.bootstrap_servers)
        if self.startup_mode not in _STARTUP_MODES:
            _bad("kafka.startup_mode", f"one of {_STARTUP_MODES}", self.startup_mode)

    def topic(self, name: str) -> str:
        """Full topic name for one of the *_topic fields, with the prefix applied."""
        return self.topic_prefix + getattr(self, f"{name}_topic")

    def input_topics(self) -> list[str]:
        return [self.topic(n) for n in ("impressions", "clicks", "conversions", "auctions")]

    def output_topics(self) -> list[str]:
        return [self.topic(n) for n in ("rewards", "batches", "late", "dlq", "policy_updates", "drift")]

    def client_properties(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """``properties`` with their secret references resolved (Java client names)."""
        return {
            name: secrets.resolve(v, f"kafka.properties.{name}", env) for name, v in self.properties.items()
        }

    def table_options(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """The client properties as options of Flink's Kafka tables (``properties.<name>``)."""
        return flink_table_options(self.client_properties(env))

    def librdkafka(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """Settings for the project's Python clients (confluent-kafka): the brokers and the
        translated security properties."""
        translated = librdkafka_settings(self.client_properties(env))
        return {"bootstrap.servers": self.bootstrap_servers, **translated.settings}

    def secret_values(self, env: Mapping[str, str] | None = None) -> list[str]:
        """The resolved secrets, for masking messages that might carry one."""
        resolved = self.client_properties(env)
        out = [v for k, v in resolved.items() if secrets.is_sensitive(k)]
        translated = librdkafka_settings({k: v for k, v in resolved.items() if k == "sasl.jaas.config"})
        return out + [v for k, v in translated.settings.items() if k == "sasl.password"]


@dataclass(frozen=True)
class RedisConfig:
    url: str = "redis://127.0.0.1:6379/0"  # rediss:// for TLS; no password in it (see password)
    key_prefix: str = "adloop"
    username: str = ""  # ACL user (docs/security.md lists what the job's user needs)
    password: str = ""  # ${env:NAME} or ${file:PATH}
    tls_ca_file: str = ""  # CA bundle the server certificate is verified against (system's if empty)
    tls_cert_file: str = ""  # client certificate and key, when the server asks for one
    tls_key_file: str = ""
    tls_check_hostname: bool = True  # the server certificate must name the host in the URL
    # Bound on each Redis call (connect, read): a silent server holds a learner's timer no longer.
    timeout_ms: int = 1_000
    # Versions of each (campaign, agent) kept with their params in Redis for reading back and
    # rolling back (the policy-updates topic keeps every one, for its retention).
    history_len: int = 1_000

    def __post_init__(self) -> None:
        if not self.url.startswith(("redis://", "rediss://", "unix://")):
            _bad("redis.url", "a redis://, rediss:// or unix:// URL", self.url)
        if urlsplit(self.url).password:
            raise ValueError(
                "config key 'redis.url': expected no password in the URL (set redis.password to "
                "${env:NAME} or ${file:PATH}), found one (not shown)"
            )
        secrets.check_not_plain("redis.password", self.password)
        if not isinstance(self.timeout_ms, int) or isinstance(self.timeout_ms, bool) or self.timeout_ms < 10:
            _bad("redis.timeout_ms", "an integer >= 10 (milliseconds)", self.timeout_ms)
        if (
            not isinstance(self.history_len, int)
            or isinstance(self.history_len, bool)
            or self.history_len < 1
        ):
            _bad("redis.history_len", "an integer >= 1 (versions per key)", self.history_len)
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            _bad(
                "redis.tls_cert_file / redis.tls_key_file",
                "both set or both empty",
                (self.tls_cert_file, self.tls_key_file),
            )

    @property
    def tls(self) -> bool:
        return self.url.startswith("rediss://") or bool(self.tls_ca_file or self.tls_cert_file)

    def store_options(self, env: Mapping[str, str] | None = None, *, resolve: bool = True) -> dict[str, Any]:
        """Keyword arguments of :class:`state.policy_store.RedisPolicyStore`, the password resolved
        (or left a reference with ``resolve=False``, for an operator to resolve where it runs)."""
        options: dict[str, Any] = {
            "key_prefix": self.key_prefix,
            "socket_timeout_s": self.timeout_ms / 1000,
            "history_len": self.history_len,
        }
        if self.username:
            options["username"] = self.username
        if self.password:
            options["password"] = (
                secrets.resolve(self.password, "redis.password", env) if resolve else self.password
            )
        if self.tls:
            options.update(
                tls=True,
                tls_ca_certs=self.tls_ca_file or None,
                tls_certfile=self.tls_cert_file or None,
                tls_keyfile=self.tls_key_file or None,
                tls_check_hostname=self.tls_check_hostname,
            )
        return options


@dataclass(frozen=True)
class IngestConfig:
    out_of_orderness_ms: int = 60_000
    # An event more than this ahead of its Kafka timestamp is a dead letter and never moves event
    # time: a few minutes of clock skew, not a day that would make the rest of the day late.
    max_future_ms: int = 300_000
    dedup_ttl_ms: int = 2 * 86_400_000  # how long an event_id is remembered for deduplication
    # Input limits checked in the parse (sql/ingest.py lists the dead-letter reasons).
    max_payload_bytes: int = 65_536
    max_amount: int = 1_000_000  # bid and win prices, conversion values (currency units)
    max_feature_abs: int = 1_000_000
    dlq_payload_chars: int = 4_096  # a dead letter carries this much of its payload, and its length

    def __post_init__(self) -> None:
        _non_negative("ingest.out_of_orderness_ms", self.out_of_orderness_ms)
        _non_negative("ingest.max_future_ms", self.max_future_ms)
        for key, low, high in (
            ("max_payload_bytes", 256, 1_048_576 - 65_536),
            ("max_amount", 1, 10**12),
            ("max_feature_abs", 1, 10**12),
            ("dlq_payload_chars", 64, 131_072),
        ):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                _bad(f"ingest.{key}", f"an integer in {low}..{high}", value)
        if not isinstance(self.dedup_ttl_ms, int) or self.dedup_ttl_ms < 1000:
            _bad("ingest.dedup_ttl_ms", "an integer >= 1000 (milliseconds)", self.dedup_ttl_ms)


@dataclass(frozen=True)
class BatchesConfig:
    interval_ms: int = 100  # micro-batch length for the learners, on the processing clock
    feature_dim: int = 8  # length of the impressions' feature vectors (for Σxxᵀ and Σrx)
    # What closes a micro-batch: "processing" (every interval_ms of wall time: fresh policies
    # live), "event" (every event_interval_ms of event time, when the watermark passes: every
    # reward row reaches the learners even when the input ends, and the batches are the same in
    # every run), or "auto": event for a bounded run (kafka.bounded), processing otherwise.
    clock: str = "auto"
    event_interval_ms: int = 86_400_000

    def __post_init__(self) -> None:
        for key in ("interval_ms", "event_interval_ms"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 10:
                _bad(f"batches.{key}", "an integer >= 10 (milliseconds)", value)
        if self.clock not in ("auto", "processing", "event"):
            _bad("batches.clock", "one of auto, processing, event", self.clock)
        if not isinstance(self.feature_dim, int) or not 0 <= self.feature_dim <= 64:
            _bad("batches.feature_dim", "an integer in 0..64", self.feature_dim)

    def window(self, bounded: bool) -> tuple[str, int]:
        """The micro-batches' clock ("processing" or "event") and window length in ms."""
        clock = self.clock if self.clock != "auto" else "event" if bounded else "processing"
        return clock, self.interval_ms if clock == "processing" else self.event_interval_ms


@dataclass(frozen=True)
class TablesConfig:
    rewards_path: str = ".work/tables/rewards"  # Parquet reward table; relative to the project root

    def rewards_uri(self) -> str:
        """The path for Flink's filesystem connector; a relative path stays relative (jobs resolve
        it against the project root with ``absolute()`` before they start)."""
        if "://" in self.rewards_path:
            return self.rewards_path
        return Path(self.rewards_path).as_posix()

    def absolute(self) -> TablesConfig:
        if "://" in self.rewards_path or Path(self.rewards_path).is_absolute():
            return self
        return TablesConfig(rewards_path=(ROOT / self.rewards_path).resolve().as_uri())


@dataclass(frozen=True)
class PublishConfig:
    interval_ms: int = 100  # a key publishes at most this often
    every_n: int = 1  # ... and once this many updates are pending
    idle_expiry_ms: int = 7 * 86_400_000  # state of a campaign idle this long is dropped

    def __post_init__(self) -> None:
        for key in ("interval_ms", "every_n", "idle_expiry_ms"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                _bad(f"publish.{key}", "an integer >= 1", value)


@dataclass(frozen=True)
class JobSettings:
    parallelism: int = 1
    name: str = "adloop-feedback"
    learners: bool = True  # false: attribution and reward tables only (SQL), no learners/publishing

    def __post_init__(self) -> None:
        if not isinstance(self.parallelism, int) or self.parallelism < 1:
            _bad("job.parallelism", "an integer >= 1", self.parallelism)


@dataclass(frozen=True)
class AppConfig:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    attribution: AttributionConfig = field(default_factory=AttributionConfig)
    rewards: RewardConfig = field(default_factory=RewardConfig)
    batches: BatchesConfig = field(default_factory=BatchesConfig)
    learners: LearnerSpecs = field(default_factory=LearnerSpecs)
    campaigns: CampaignTable = field(default_factory=CampaignTable)
    publish: PublishConfig = field(default_factory=PublishConfig)
    tables: TablesConfig = field(default_factory=TablesConfig)
    job: JobSettings = field(default_factory=JobSettings)

    def replace(self, **sections: Mapping[str, Any]) -> AppConfig:
        """A copy with some keys of some sections changed, validated like a loaded file."""
        current = {f.name: _as_mapping(getattr(self, f.name)) for f in dataclasses.fields(self)}
        raw = {name: {**current[name], **values} for name, values in sections.items()}
        return _build({**current, **raw})


def _as_mapping(section: Any) -> dict[str, Any]:
    if hasattr(section, "to_mapping"):
        return section.to_mapping()
    return dataclasses.asdict(section)


def as_sections(cfg: AppConfig) -> dict[str, dict[str, Any]]:
    """The whole config as the YAML sections ``load`` reads (to write a config file)."""
    return {f.name: _as_mapping(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def _bad(key: str, expected: str, found: Any) -> None:
    raise ValueError(f"config key {key!r}: expected {expected}, found {found!r}")


def _non_negative(key: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        _bad(key, "an integer >= 0", value)


def _coerce(key: str, text: str, target: type) -> Any:
    """Environment values are strings; convert them to the field's type or fail naming the key."""
    if target is bool:
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        _bad(key, "true or false", text)
    if target is int:
        if not text.lstrip("-").isdigit():
            _bad(key, "an integer", text)
        return int(text)
    return text


def _build(raw: Mapping[str, Any]) -> AppConfig:
    sections = {f.name: f for f in dataclasses.fields(AppConfig)}
    built = {}
    for name, value in raw.items():
        if name not in sections:
            _bad(name, f"a section among {sorted(sections)}", name)
        if not isinstance(value, Mapping):
            _bad(name, "a mapping of keys", value)
        cls: Any = sections[name].default_factory
        if hasattr(cls, "from_mapping"):
            built[name] = cls.from_mapping(value)
            continue
        known = {f.name: f for f in dataclasses.fields(cls)}
        for key, item in value.items():
            if key not in known:
                _bad(f"{name}.{key}", f"a key among {sorted(known)}", key)
            expected = type(getattr(cls(), key))
            if not isinstance(item, expected) or (expected is int and isinstance(item, bool)):
                _bad(f"{name}.{key}", f"a {expected.__name__}", item)
        built[name] = cls(**value)
    return AppConfig(**built)


def load(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> AppConfig:
    """Load the YAML file (default ``flink-conf/adloop.yaml``), then apply ADLOOP_* overrides."""
    env = os.environ if env is None else env
    path = Path(env.get("ADLOOP_CONFIG", path or DEFAULT_FILE))
    if not path.exists():
        raise ValueError(f"config file {str(path)!r}: expected an existing YAML file, found nothing there")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        _bad(str(path), "a YAML mapping of sections", type(raw).__name__)
    raw = {name: dict(values or {}) for name, values in raw.items()}
    defaults = AppConfig()
    for f in dataclasses.fields(AppConfig):
        section = getattr(defaults, f.name)
        for key in (k.name for k in dataclasses.fields(section)):
            if dataclasses.is_dataclass(getattr(section, key)) or isinstance(getattr(section, key), dict):
                continue  # nested (reward weights, client properties): set in the file
            env_key = f"{ENV_PREFIX}{f.name}_{key}".upper()
            if env_key in env:
                target = type(getattr(section, key))
                raw.setdefault(f.name, {})[key] = _coerce(
                    f"{f.name}.{key} (from {env_key})", env[env_key], target
                )
    return _build(raw)
