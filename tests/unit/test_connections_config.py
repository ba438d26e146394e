"""Kafka client properties, secrets and roles in the config: validation, rendering, masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import app as app_config
from connect import secrets
from connect.acls import kafka_acls, redis_rules
from connect.kafka_props import client_settings_from_file, librdkafka_settings
from contract import events
from sql import outputs, pipeline

JAAS = (
    "org.apache.kafka.common.security.scram.ScramLoginModule required "
    'username="adloop-job" password="${env:T_PW}";'
)
SASL = {
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.jaas.config": JAAS,
    "ssl.truststore.type": "PEM",
    "ssl.truststore.location": "/etc/adloop/ca.pem",
}


def secured(**kafka) -> app_config.AppConfig:
    return app_config.AppConfig().replace(kafka={"properties": SASL, **kafka})


def test_a_plain_text_secret_in_the_config_is_refused_naming_the_key_but_not_the_value():
    with pytest.raises(ValueError, match=r"'kafka.properties.sasl.jaas.config'.*plain text") as info:
        app_config.AppConfig().replace(kafka={"properties": {**SASL, "sasl.jaas.config": 'password="pw1";'}})
    assert "pw1" not in str(info.value)
    with pytest.raises(ValueError, match="'redis.password'"):
        app_config.AppConfig().replace(redis={"password": "hunter2"})
    with pytest.raises(ValueError, match="'redis.url'.*no password") as info:
        app_config.AppConfig().replace(redis={"url": "redis://u:hunter2@127.0.0.1:6379/0"})
    assert "hunter2" not in str(info.value)


def test_properties_the_job_sets_itself_are_refused_with_the_key_to_use():
    with pytest.raises(ValueError, match="kafka.properties.group.id.*kafka.group_id"):
        app_config.AppConfig().replace(kafka={"properties": {"group.id": "x"}})
    with pytest.raises(ValueError, match="kafka.delivery_guarantee"):
        app_config.AppConfig().replace(kafka={"delivery_guarantee": "maybe"})


def test_a_missing_secret_is_an_error_naming_the_key_and_the_variable(monkeypatch):
    monkeypatch.delenv("T_PW", raising=False)
    with pytest.raises(ValueError, match=r"'kafka.properties.sasl.jaas.config'.*'T_PW'"):
        secured().kafka.client_properties()


def test_secrets_come_from_the_environment_or_a_file(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("T_PW", "from-env")
    assert 'password="from-env"' in secured().kafka.client_properties()["sasl.jaas.config"]
    secret = tmp_path / "redis-pw"
    secret.write_text("from-file\n")
    cfg = app_config.AppConfig().replace(redis={"username": "adloop-job", "password": f"${{file:{secret}}}"})
    assert cfg.redis.store_options()["password"] == "from-file"
    assert cfg.redis.store_options(resolve=False)["password"] == f"${{file:{secret}}}"


def test_a_config_dump_shows_where_secrets_come_from_never_the_secrets(monkeypatch):
    monkeypatch.setenv("T_PW", "s3cret-value")
    cfg = secured()
    dump = repr(cfg) + str(app_config.as_sections(cfg))
    assert "${env:T_PW}" in dump and "s3cret-value" not in dump
    assert cfg.kafka.secret_values() and all("s3cret-value" in s for s in cfg.kafka.secret_values())
    assert (
        secrets.mask("login with s3cret-value failed", cfg.kafka.secret_values())
        == "login with ****** failed"
    )


def test_every_kafka_table_of_the_job_gets_the_properties_and_the_transactional_sinks_their_ids(monkeypatch):
    monkeypatch.setenv("T_PW", "pw")
    cfg = secured(transactional_id_prefix="feedback-7")
    statements = pipeline.source_statements(cfg) + outputs.sink_statements(cfg)
    kafka_tables = [s for s in statements if "'connector' = 'kafka'" in s]
    assert len(kafka_tables) == 4 + 4  # four sources, four Kafka sinks (the fifth is Parquet)
    shaded = "org.apache.flink.kafka.shaded.org.apache.kafka.common.security.scram.ScramLoginModule"
    for ddl in kafka_tables:
        assert "'properties.security.protocol' = 'SASL_SSL'" in ddl
        assert f"'properties.sasl.jaas.config' = '{shaded}" in ddl
    sources = [s for s in kafka_tables if "scan.startup.mode" in s]
    assert all("'properties.isolation.level' = 'read_committed'" in s for s in sources)
    sinks = {s.split("(", 1)[0].split()[-1]: s for s in kafka_tables if "sink.delivery-guarantee" in s}
    for sink, name in (("rewards_sink", "rewards"), ("batches_sink", "batches")):
        assert "'sink.delivery-guarantee' = 'exactly-once'" in sinks[sink]
        assert f"'sink.transactional-id-prefix' = 'feedback-7.{name}'" in sinks[sink]
        assert "'properties.transaction.timeout.ms' = '900000'" in sinks[sink]
    for sink in ("dlq_sink", "late_sink"):
        assert "'sink.delivery-guarantee' = 'at-least-once'" in sinks[sink]
    relaxed = secured(delivery_guarantee="at-least-once")
    assert "exactly-once" not in "".join(outputs.sink_statements(relaxed))


def test_python_clients_get_the_same_security_settings_in_librdkafka_names(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("T_PW", "pw")
    assert secured(bootstrap_servers="b1:9093").kafka.librdkafka() == {
        "bootstrap.servers": "b1:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "adloop-job",
        "sasl.password": "pw",
        "ssl.ca.location": "/etc/adloop/ca.pem",
    }
    mtls = {"security.protocol": "SSL", "ssl.keystore.type": "PEM", "ssl.keystore.location": "/k.pem"}
    assert librdkafka_settings(mtls).settings == {
        "security.protocol": "SSL",
        "ssl.certificate.location": "/k.pem",
        "ssl.key.location": "/k.pem",
    }
    with pytest.raises(ValueError, match="ssl.truststore.type.*PEM"):
        librdkafka_settings({"ssl.truststore.location": "/t.jks"})
    path = tmp_path / "adloop.yaml"
    lines = ["kafka:", "  properties:", "    security.protocol: SSL", "    ssl.keystore.type: PKCS12",
             "    ssl.keystore.location: /k.p12", "    ssl.keystore.password: ${env:T_PW}"]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    assert client_settings_from_file(str(path))["ssl.keystore.password"] == "pw"


def test_the_job_role_covers_exactly_the_topics_group_and_transactional_ids_the_job_uses():
    cfg = app_config.AppConfig()
    acls = kafka_acls(cfg, "job")
    topics = {(a.name, a.operation) for a in acls if a.resource_type == "TOPIC"}
    assert topics == {(t, "READ") for t in events.TOPICS} | {(t, "WRITE") for t in cfg.kafka.output_topics()}
    assert {(a.resource_type, a.name, a.pattern) for a in acls if a.resource_type != "TOPIC"} == {
        ("GROUP", "adloop-feedback", "LITERAL"),
        ("TRANSACTIONAL_ID", "adloop-feedback.", "PREFIXED"),
    }
    assert all(a.operation in ("READ", "WRITE") for a in acls)
    assert not [a for a in kafka_acls(cfg, "producer") if a.operation != "WRITE"]
    assert not [a for a in kafka_acls(cfg, "reader") if a.operation != "READ"]


def test_the_serving_role_in_redis_reads_only():
    rules = redis_rules("adloop", "serving")
    assert "%R~adloop:*" in rules and "&adloop:*" in rules
    assert not {"+hset", "+xadd", "+publish", "+evalsha", "+eval", "+@all"} & set(rules)
    job = redis_rules("adloop", "job")
    assert "~adloop:*" in job and "+evalsha" in job and "+@all" not in job


def test_docs_list_the_permissions_the_code_renders_for_the_default_config():
    from scripts.acls import main as acls

    docs = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    for argv in (
        ["kafka", "--role", "job", "--principal", "User:adloop-job"],
        ["kafka", "--role", "producer", "--principal", "User:adloop-producer"],
        ["kafka", "--role", "reader", "--principal", "User:adloop-reader"],
        ["redis", "--role", "job", "--user", "adloop-job", "--password-env", "ADLOOP_REDIS_JOB_PASSWORD"],
        [
            "redis",
            "--role",
            "serving",
            "--user",
            "adloop-serving",
            "--password-env",
            "ADLOOP_REDIS_SERVING_PASSWORD",
        ],
    ):
        rendered = _printed(acls, argv)
        assert rendered.strip() and rendered.strip() in docs, argv


def _printed(fn, argv) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert fn(argv) == 0
    return out.getvalue()
