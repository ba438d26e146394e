"""The job, the simulator's writer and the serving client on an authenticated, encrypted Kafka and
Redis, with only the permissions of docs/security.md (rendered by connect/acls.py).

One KRaft broker serves a SASL_SSL listener (SCRAM-SHA-512) and a mutual-TLS listener with the
standard authorizer on; one redis-server serves TLS only, asks clients for certificates, and knows
an ACL user per role. Certificates are made by the test. A simulated day runs through each Kafka
listener, and its reward rows must equal those of a run on the plaintext listener.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from config import app as app_config
from connect.acls import apply_kafka_acls, kafka_acls, redis_rules
from connect.preflight import KafkaAccessError
from jobs import feedback_job
from scripts import kafka_tools
from sim.config import SimConfig
from sim.simulator import Simulator
from sim.writers import KafkaWriter
from state.policy_store import PolicyStoreAuthError, RedisPolicyStore
from state.serving_client import ServingClient
from tests.integration.configs import SETTLED_MS
from tests.integration.secured import Certs, RedisServer, SecureKafka, free_port, make_certs

# Secrets of this test, each from the environment only: none may show up in a log or message.
JOB_KAFKA_PASSWORD = "kafka-job-Secret-4f1c9"
SIM_KAFKA_PASSWORD = "kafka-sim-Secret-77ad2"
NOWRITE_KAFKA_PASSWORD = "kafka-nowrite-Secret-0b3e"
JOB_REDIS_PASSWORD = "redis-job-Secret-a91e"
SERVING_REDIS_PASSWORD = "redis-serving-Secret-c2d4"
ADMIN_REDIS_PASSWORD = "redis-admin-Secret-5e6f"
SECRETS = (JOB_KAFKA_PASSWORD, SIM_KAFKA_PASSWORD, NOWRITE_KAFKA_PASSWORD, JOB_REDIS_PASSWORD,
           SERVING_REDIS_PASSWORD)  # fmt: skip
REDIS_PREFIX = "secured"
SIM = SimConfig(days=1, n_users=1_000, requests_per_day=2_500, seed=11)


def _jaas(user: str, env_name: str) -> str:
    return (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{user}" password="${{env:{env_name}}}";'
    )


def sasl_properties(certs: Certs, user: str = "adloop-job", env_name: str = "T_JOB_KAFKA_PW") -> dict:
    return {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": _jaas(user, env_name),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(certs.ca),
    }


def mtls_properties(certs: Certs, bundle: Path | None = None) -> dict:
    return {
        "security.protocol": "SSL",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(certs.ca),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(bundle or certs.client),
    }


class Secured:
    def __init__(self, root: Path) -> None:
        self.certs = make_certs(root / "certs")
        self.kafka = SecureKafka(root / "kafka", self.certs)
        tls = ["--tls-cert-file", str(self.certs.server_cert), "--tls-key-file", str(self.certs.server_key),
               "--tls-ca-cert-file", str(self.certs.ca), "--tls-auth-clients", "yes"]  # fmt: skip
        self.redis = RedisServer(root / "redis", *tls, tls_port=True)
        (root / "redis").mkdir()

    def start(self) -> None:
        self.kafka.start()
        self.kafka.add_scram_user("adloop-job", JOB_KAFKA_PASSWORD)
        self.kafka.add_scram_user("adloop-sim", SIM_KAFKA_PASSWORD)
        self.kafka.add_scram_user("adloop-nowrite", NOWRITE_KAFKA_PASSWORD)
        self.redis.start()
        admin = self.redis_admin(user=None, password=None)
        admin.execute_command(
            "ACL", "SETUSER", "admin", "on", f">{ADMIN_REDIS_PASSWORD}", "~*", "&*", "+@all"
        )
        for user, password, role in (
            ("adloop-job", JOB_REDIS_PASSWORD, "job"),
            ("adloop-serving", SERVING_REDIS_PASSWORD, "serving"),
        ):
            rules = redis_rules(REDIS_PREFIX, role)
            admin.execute_command("ACL", "SETUSER", user, "reset", "on", f">{password}", *rules)
        admin.execute_command("ACL", "SETUSER", "default", "off")
        admin.close()

    def redis_admin(
        self, user: str | None = "admin", password: str | None = ADMIN_REDIS_PASSWORD
    ) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.redis.port, ssl=True, ssl_ca_certs=str(self.certs.ca),
            ssl_certfile=str(self.certs.server_cert), ssl_keyfile=str(self.certs.server_key),
            username=user, password=password,
        )  # fmt: skip

    def stop(self) -> None:
        self.kafka.stop()
        self.redis.stop()


@pytest.fixture(scope="module")
def secured(services, tmp_path_factory) -> Secured:
    """The secured broker and Redis (the session's services provide the jars' work directory)."""
    stack = Secured(tmp_path_factory.mktemp("secured"))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def secret_env(monkeypatch) -> None:
    monkeypatch.setenv("T_JOB_KAFKA_PW", JOB_KAFKA_PASSWORD)
    monkeypatch.setenv("T_SIM_KAFKA_PW", SIM_KAFKA_PASSWORD)
    monkeypatch.setenv("T_NOWRITE_KAFKA_PW", NOWRITE_KAFKA_PASSWORD)
    monkeypatch.setenv("T_JOB_REDIS_PW", JOB_REDIS_PASSWORD)


def job_config(secured: Secured, bootstrap: str, prefix: str, properties: dict, tmp: Path, **sections):
    cfg = app_config.AppConfig().replace(
        kafka={
            "bootstrap_servers": bootstrap,
            "topic_prefix": prefix,
            "group_id": f"{prefix}job",
            "transactional_id_prefix": f"{prefix}tx",
            "properties": properties,
            "bounded": True,
        },
        tables={"rewards_path": str(tmp / f"{prefix}rewards")},
        job={"learners": False},
    )
    return cfg.replace(**sections) if sections else cfg


def redis_job_section(secured: Secured) -> dict:
    return {
        "url": f"rediss://127.0.0.1:{secured.redis.port}/0",
        "key_prefix": REDIS_PREFIX,
        "username": "adloop-job",
        "password": "${env:T_JOB_REDIS_PW}",
        "tls_ca_file": str(secured.certs.ca),
        "tls_cert_file": str(secured.certs.client),
        "tls_key_file": str(secured.certs.client),
    }


def serving_store(secured: Secured, prefix: str = REDIS_PREFIX, **overrides) -> RedisPolicyStore:
    options = {
        "key_prefix": prefix,
        "username": "adloop-serving",
        "password": SERVING_REDIS_PASSWORD,
        "tls": True,
        "tls_ca_certs": str(secured.certs.ca),
        "tls_certfile": str(secured.certs.serving_client),
        "tls_keyfile": str(secured.certs.serving_client),
        **overrides,
    }
    return RedisPolicyStore(f"rediss://127.0.0.1:{secured.redis.port}/0", **options)


def produce_day(secured: Secured, cfg: app_config.AppConfig, writer_settings: dict) -> None:
    """Create the run's topics (admin) and write one simulated day (as ``writer_settings``' user)."""
    topics = cfg.kafka.input_topics() + cfg.kafka.output_topics()
    kafka_tools.create_topics(secured.kafka.admin_bootstrap, topics, partitions=1)
    with KafkaWriter(cfg.kafka.bootstrap_servers, cfg.kafka.topic_prefix, config=writer_settings) as writer:
        for chunk in Simulator(SIM).run():
            writer.write(chunk.records)


def reward_rows(secured: Secured, cfg: app_config.AppConfig) -> list[str]:
    rows = kafka_tools.read_all(secured.kafka.admin_bootstrap, cfg.kafka.topic("rewards"))
    return sorted(json.dumps(json.loads(v), sort_keys=True) for v in rows)


def grant(secured: Secured, principal: str, cfg: app_config.AppConfig, role: str, drop: set | None = None):
    acls = [a for a in kafka_acls(cfg, role) if (a.resource_type, a.name, a.operation) not in (drop or set())]
    apply_kafka_acls({"bootstrap.servers": secured.kafka.admin_bootstrap}, principal, acls)


def _rest(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.read().decode()


def _flink_log() -> str:
    """The local JVM's log (written anew when it starts, so this session's runs only)."""
    return "".join(p.read_text(errors="replace") for p in _flink_logs())


def _flink_logs() -> list[Path]:
    import pyflink

    return sorted((Path(pyflink.__file__).parent / "log").glob("*.log"))


def _shown_on_rest(port: int, job_id: str) -> str:
    paths = (f"/jobs/{job_id}", f"/jobs/{job_id}/config", f"/jobs/{job_id}/plan", "/jobmanager/config")
    return "".join(_rest(port, path) for path in paths)


def test_a_simulated_day_through_sasl_ssl_and_mtls_with_only_the_documented_acls_equals_plaintext(
    services, secured, secret_env, unique_prefix, tmp_path, capfd
):
    base = unique_prefix.rstrip(".")
    sim_properties = sasl_properties(secured.certs, "adloop-sim", "T_SIM_KAFKA_PW")
    sim_settings = {**app_config.KafkaConfig(properties=sim_properties).librdkafka(),
                    "bootstrap.servers": secured.kafka.sasl_bootstrap}  # fmt: skip

    # Plaintext reference, on the admin listener.
    plain = job_config(secured, secured.kafka.admin_bootstrap, f"{base}.plain.", {}, tmp_path)
    produce_day(secured, plain, {})
    feedback_job.run(plain)
    expected = reward_rows(secured, plain)
    assert len(expected) > 1000

    # SASL_SSL with SCRAM-SHA-512: the simulator writes as the producer role, the job runs as the
    # job role, exactly-once sinks included; the whole day's reward rows equal the reference's.
    sasl = job_config(
        secured, secured.kafka.sasl_bootstrap, f"{base}.sasl.", sasl_properties(secured.certs), tmp_path
    )
    grant(secured, "User:adloop-sim", sasl, "producer")
    grant(secured, "User:adloop-job", sasl, "job")
    produce_day(secured, sasl, sim_settings)
    rest_port = free_port()
    job = feedback_job.run(sasl, wait=False, flink_overrides={"rest.bind-port": str(rest_port)})
    shown = _shown_on_rest(rest_port, str(job.get_job_id()))
    job.get_job_execution_result().result()
    assert reward_rows(secured, sasl) == expected

    # Mutual TLS: the principal is the client certificate's CN (adloop-job), with the same role.
    mtls = job_config(
        secured, secured.kafka.mtls_bootstrap, f"{base}.mtls.", mtls_properties(secured.certs), tmp_path
    )
    grant(secured, "User:adloop-job", mtls, "job")
    produce_day(secured, mtls, {"bootstrap.servers": secured.kafka.admin_bootstrap})
    feedback_job.run(mtls)
    assert reward_rows(secured, mtls) == expected

    # The same topics again, unbounded, learners on, publishing to the TLS + ACL Redis as the job's
    # Redis user with its client certificate; stopped once its outputs are stable.
    live = mtls.replace(
        kafka={"bounded": False, "group_id": f"{base}.live", "transactional_id_prefix": f"{base}.live"},
        redis=redis_job_section(secured), job={"learners": True},
        tables={"rewards_path": str(tmp_path / "live-rewards")},
    )  # fmt: skip
    live = live.replace(kafka={"rewards_topic": "ad.rewards.live", "batches_topic": "ad.learner.batches.live",
                               "policy_updates_topic": "ad.policy.updates.live"})  # fmt: skip
    kafka_tools.create_topics(secured.kafka.admin_bootstrap, live.kafka.output_topics(), partitions=1)
    grant(secured, "User:adloop-job", live, "job")
    rest_port = free_port()
    job = feedback_job.run(live, flink_overrides={"rest.bind-port": str(rest_port)})
    try:
        shown += _shown_on_rest(rest_port, str(job.get_job_id()))
        for output in ("policy_updates", "rewards"):  # committed on checkpoints (10 s apart)
            kafka_tools.wait_until_stable(secured.kafka.admin_bootstrap, live.kafka.topic(output), quiet_s=25)
    finally:
        job.cancel().result()
    # Unbounded, event time stops at the slowest topic's last event: every row it wrote is a
    # reference row, and it wrote every reference row settled three hours before that.
    got = reward_rows(secured, live)
    last_ts: dict[str, int] = {}
    for chunk in Simulator(SIM).run():
        for r in chunk.records:
            last_ts[r.topic] = max(last_ts.get(r.topic, 0), r.ts)
    cutoff = min(last_ts.values()) - SETTLED_MS
    settled = [r for r in expected if json.loads(r)["reward_ts"] < cutoff]
    extra, missing = set(got) - set(expected), set(settled) - set(got)
    assert not extra and not missing and len(settled) > 1000, (len(extra), sorted(extra)[:3], len(missing),
                                                                sorted(missing)[:3])  # fmt: skip

    # The serving node reads what the job published, as its read-only user, with its certificate.
    with serving_store(secured) as store:
        published = store.load_all()
    assert {r.agent for r in published} >= {"creative", "bid"}  # the agents the simulator serves
    record = next(r for r in published if r.agent == "creative")
    client = ServingClient(serving_store(secured), seed=1)
    try:
        assert client.start(wait_s=10)
        assert client.wait_for_version(record.campaign_id, "creative", record.version, timeout_s=10)
        # The creative agent's bandit per segment: the segment the simulator logged, its creatives.
        arms = list(record.params["pooled"]["arms"])
        choice = client.choose(record.campaign_id, "creative", {"segment": "seg0"}, arms)
        assert choice.source == "policy" and 0 < choice.propensity <= 1
    finally:
        client.stop()

    # No secret in what the runs printed, logged, dumped or showed on Flink's REST API (web UI).
    out, err = capfd.readouterr()
    dumps = json.dumps(app_config.as_sections(live)) + repr(sasl) + repr(live)
    texts = {"stdout/stderr": out + err, "Flink logs": _flink_log(), "config dump": dumps,
             "REST API": shown}  # fmt: skip
    assert texts["Flink logs"] and texts["REST API"] and texts["config dump"]
    for where, text in texts.items():
        assert not [s for s in SECRETS if s in text], f"{where} shows a secret"
    assert "${env:T_JOB_KAFKA_PW}" in dumps and "${env:T_JOB_REDIS_PW}" in dumps  # where each comes from


def _fails_fast(cfg: app_config.AppConfig, error: type[Exception], match: str) -> str:
    started = time.monotonic()
    with pytest.raises(error, match=match) as info:
        feedback_job.check_connections(cfg)
    assert time.monotonic() - started < 10.0, "a clear error within seconds, not a retry loop"
    message = str(info.value)
    assert not [s for s in SECRETS if s in message]
    return message


def test_wrong_password_untrusted_certificate_and_missing_write_permission_are_clear_errors_at_start(
    services, secured, secret_env, unique_prefix, tmp_path, monkeypatch
):
    base = unique_prefix.rstrip(".")
    cfg = job_config(
        secured, secured.kafka.sasl_bootstrap, f"{base}.", sasl_properties(secured.certs), tmp_path
    )
    kafka_tools.create_topics(
        secured.kafka.admin_bootstrap, [*cfg.kafka.input_topics(), *cfg.kafka.output_topics()], 1
    )
    grant(secured, "User:adloop-job", cfg, "job")

    # Wrong SCRAM password, named as such, for the job and for the simulator's writer.
    monkeypatch.setenv("T_JOB_KAFKA_PW", "not-the-password")
    message = _fails_fast(cfg, KafkaAccessError, "authentication failed")
    assert secured.kafka.sasl_bootstrap in message and "SASL_SSL" in message
    with pytest.raises(ConnectionError, match="Authentication failed"):
        KafkaWriter(secured.kafka.sasl_bootstrap, timeout_s=5, config=cfg.kafka.librdkafka())
    monkeypatch.setenv("T_JOB_KAFKA_PW", JOB_KAFKA_PASSWORD)
    feedback_job.check_connections(cfg)  # the right one passes, with the documented ACLs

    # A client certificate from a CA the broker does not trust.
    rogue_properties = mtls_properties(secured.certs, secured.certs.rogue_client)
    rogue = cfg.replace(
        kafka={"bootstrap_servers": secured.kafka.mtls_bootstrap, "properties": rogue_properties}
    )
    message = _fails_fast(rogue, KafkaAccessError, "TLS handshake failed")
    assert secured.kafka.mtls_bootstrap in message

    # A principal with every documented ACL but WRITE on ad.rewards.
    nowrite = cfg.replace(
        kafka={"properties": sasl_properties(secured.certs, "adloop-nowrite", "T_NOWRITE_KAFKA_PW")}
    )
    grant(secured, "User:adloop-nowrite", cfg, "job", drop={("TOPIC", cfg.kafka.topic("rewards"), "WRITE")})
    message = _fails_fast(nowrite, KafkaAccessError, "permission denied on topic")
    assert repr(cfg.kafka.topic("rewards")) in message and "WRITE" in message

    # Redis: a wrong password for the job's user is a clear error at start too.
    monkeypatch.setenv("T_JOB_REDIS_PW", "not-the-password")
    with_redis = cfg.replace(redis=redis_job_section(secured), job={"learners": True})
    _fails_fast(with_redis, PolicyStoreAuthError, "refused the credentials")


def test_redis_roles_tls_client_certificates_and_hostname_verification(secured, secret_env, tmp_path):
    from tests.integration.test_policy_store import ts_record

    cfg = app_config.AppConfig().replace(redis=redis_job_section(secured))
    with RedisPolicyStore(cfg.redis.url, **cfg.redis.store_options()) as job_store:
        job_store.check_access()
        assert job_store.publish(ts_record("roles-c01", "creative", 1))
    # The serving node's user reads and subscribes, and cannot write.
    with serving_store(secured) as store:
        assert store.get("roles-c01", "creative").version == 1
        pubsub = store.pubsub()
        pubsub.subscribe(store.keys.channel)
        pubsub.close()
        with pytest.raises(PolicyStoreAuthError, match="permission"):
            store.publish(ts_record("roles-c01", "creative", 2))
    # The job's user cannot touch another prefix.
    other = {**cfg.redis.store_options(), "key_prefix": "someone-else"}
    with RedisPolicyStore(cfg.redis.url, **other) as store:
        with pytest.raises(PolicyStoreAuthError):
            store.check_access()
        with pytest.raises(PolicyStoreAuthError):
            store.publish(ts_record("roles-c01", "creative", 3))
    # Without a client certificate the server refuses the connection.
    with serving_store(secured, tls_certfile=None, tls_keyfile=None) as store:
        with pytest.raises(Exception, match="(?i)certificate|reset|closed|EOF|handshake|Connection"):
            store.get("roles-c01", "creative")

    # A server whose certificate names another host is refused; the hostname check is what refuses.
    tls = ["--tls-cert-file", str(secured.certs.wrong_host_cert), "--tls-key-file",
           str(secured.certs.wrong_host_key), "--tls-ca-cert-file", str(secured.certs.ca),
           "--tls-auth-clients", "no"]  # fmt: skip
    (tmp_path / "wrong").mkdir()
    wrong = RedisServer(tmp_path / "wrong", *tls, tls_port=True)
    wrong.start()
    try:
        url = f"rediss://127.0.0.1:{wrong.port}/0"
        with RedisPolicyStore(url, tls_ca_certs=str(secured.certs.ca)) as store:
            with pytest.raises(PolicyStoreAuthError, match="certificate"):
                store.ping()
        with RedisPolicyStore(url, tls_ca_certs=str(secured.certs.ca), tls_check_hostname=False) as store:
            store.ping()
    finally:
        wrong.stop()
