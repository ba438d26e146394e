"""Secured servers for the integration tier, started and stopped by pid, on loopback only:

- :func:`make_certs`: a CA, server certificates (for 127.0.0.1, and one for another host), client
  certificates, and a second CA the servers do not trust, all made here with the openssl CLI;
- :class:`SecureKafka`: a KRaft broker with a SASL_SSL listener (SCRAM-SHA-512), a mutual-TLS
  listener and the standard authorizer; a plaintext listener for the test's admin (super user);
- :class:`RedisServer`: a throwaway redis-server, TLS and ACLs as its arguments say.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from scripts import services as svc

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _watch(pid: int) -> subprocess.Popen[bytes]:
    """A watchdog that stops ``pid`` once this test process is gone (or after an hour), should a
    test or fixture end without stopping its server."""
    return subprocess.Popen(
        [sys.executable, "-m", "scripts.services", "_watchdog", "--ttl", "3600",
         "--owner-pid", str(os.getpid()), "--pids", str(pid)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


# -- certificates ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    ca: Path  # the CA every server and client trusts (PEM)
    server_cert: Path  # for 127.0.0.1 and localhost, signed by ca
    server_key: Path
    server_p12: Path  # the same as PKCS12, password P12_PASSWORD (the broker's key store)
    wrong_host_cert: Path  # signed by ca, but for another host
    wrong_host_key: Path
    client: Path  # key + certificate of CN=adloop-job, signed by ca (one PEM file)
    serving_client: Path  # key + certificate of CN=adloop-serving, signed by ca
    rogue_client: Path  # key + certificate of CN=adloop-job, signed by a CA nobody trusts


P12_PASSWORD = "test-keystore-pw"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, crt = directory / f"{name}.key", directory / f"{name}.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
             "-keyout", str(key), "-out", str(crt))  # fmt: skip
    return key, crt


def _signed(directory: Path, name: str, cn: str, ca: tuple[Path, Path], ext: str) -> tuple[Path, Path]:
    """A PKCS#8 key and a certificate for ``cn`` signed by ``ca`` with the extensions ``ext``."""
    key, csr, crt, extfile = (directory / f"{name}{s}" for s in (".key", ".csr", ".pem", ".ext"))
    extfile.write_text(ext + "\n")
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key))
    _openssl("req", "-new", "-key", str(key), "-subj", f"/CN={cn}", "-out", str(csr))
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[1]), "-CAkey", str(ca[0]), "-CAcreateserial",
             "-days", "2", "-extfile", str(extfile), "-out", str(crt))  # fmt: skip
    return key, crt


def _bundle(directory: Path, name: str, key: Path, crt: Path) -> Path:
    path = directory / f"{name}-bundle.pem"
    path.write_text(key.read_text() + crt.read_text())
    return path


def make_certs(directory: Path) -> Certs:
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(directory, "adloop-test-ca")
    rogue_ca = _ca(directory, "rogue-ca")
    server_ext = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth"
    client_ext = "extendedKeyUsage=clientAuth"
    server_key, server_crt = _signed(directory, "server", "localhost", ca, server_ext)
    p12 = directory / "server.p12"
    _openssl("pkcs12", "-export", "-in", str(server_crt), "-inkey", str(server_key), "-out", str(p12),
             "-passout", f"pass:{P12_PASSWORD}")  # fmt: skip
    wrong_key, wrong_crt = _signed(
        directory, "wrong-host", "wrong.example", ca, "subjectAltName=DNS:wrong.example"
    )
    client = _bundle(directory, "job", *_signed(directory, "job", "adloop-job", ca, client_ext))
    serving = _bundle(directory, "serving", *_signed(directory, "serving", "adloop-serving", ca, client_ext))
    rogue = _bundle(directory, "rogue", *_signed(directory, "rogue", "adloop-job", rogue_ca, client_ext))
    return Certs(ca[1], server_crt, server_key, p12, wrong_crt, wrong_key, client, serving, rogue)


# -- Kafka -----------------------------------------------------------------------------------------


class SecureKafka:
    """A KRaft broker with PLAINTEXT (admin, super user), SASL_SSL (SCRAM-SHA-512) and SSL (client
    certificates required; the principal is the certificate's CN) listeners, ACLs enforced."""

    def __init__(self, home: Path, certs: Certs) -> None:
        self.home, self.certs = home, certs
        self.plain_port, self.sasl_port, self.mtls_port, self.controller_port = (
            free_port() for _ in range(4)
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.watchdog: subprocess.Popen[bytes] | None = None

    @property
    def admin_bootstrap(self) -> str:
        return f"127.0.0.1:{self.plain_port}"

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def mtls_bootstrap(self) -> str:
        return f"127.0.0.1:{self.mtls_port}"

    def _properties(self) -> str:
        c = self.certs
        listeners = (
            f"PLAINTEXT://127.0.0.1:{self.plain_port},SASL_SSL://127.0.0.1:{self.sasl_port},"
            f"SSL://127.0.0.1:{self.mtls_port}"
        )
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                f"listeners={listeners},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners={listeners}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL",
                "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "super.users=User:ANONYMOUS",
                "allow.everyone.if.no.acl.found=false",
                "sasl.enabled.mechanisms=SCRAM-SHA-512",
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                "ssl.keystore.type=PKCS12",
                f"ssl.keystore.location={c.server_p12}",
                f"ssl.keystore.password={P12_PASSWORD}",
                "ssl.truststore.type=PEM",
                f"ssl.truststore.location={c.ca}",
                "listener.name.ssl.ssl.client.auth=required",
                "ssl.principal.mapping.rules=RULE:^CN=([^,]+)$/$1/,DEFAULT",
                f"log.dirs={self.home / 'data'}",
                "num.partitions=1",
                *svc.SINGLE_BROKER,
                "",
            ]
        )

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        props = self.home / "server.properties"
        props.write_text(self._properties())
        log4j, log = self.home / "log4j2.properties", self.home / "kafka.log"
        svc._log4j2(log4j, log)
        jars = svc.work_dir() / "jars" / "kafka"
        jvm = [svc._java(), "-Xms256m", "-Xmx512m", f"-Dlog4j2.configurationFile={log4j}", "-cp",
               svc._kafka_classpath(jars)]  # fmt: skip
        fmt = subprocess.run(
            [*jvm, "kafka.tools.StorageTool", "format", "-t", svc._cluster_id(), "-c", str(props)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if fmt.returncode != 0:
            raise RuntimeError(f"Kafka storage format failed: {fmt.stderr or fmt.stdout}")
        self.proc = svc._spawn([*jvm, "kafka.Kafka", str(props)], self.home / "kafka.out")
        svc._wait(lambda: svc._kafka_ready(self.admin_bootstrap), "secured Kafka", self.proc, log)
        self.watchdog = _watch(self.proc.pid)

    def add_scram_user(self, user: str, password: str) -> None:
        from confluent_kafka.admin import (
            AdminClient,
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        admin = AdminClient({"bootstrap.servers": self.admin_bootstrap, "log_level": 0})
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
        futures = admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(user, info, password.encode())]
        )
        for future in futures.values():
            future.result(timeout=30)

    def stop(self) -> None:
        for proc in (self.proc, self.watchdog):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


# -- Redis -----------------------------------------------------------------------------------------


class RedisServer:
    """A throwaway redis-server on a fixed loopback port, started and stopped by its pid."""

    def __init__(self, workdir: Path, *extra: str, tls_port: bool = False) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.extra = list(extra)
        self.tls_port = tls_port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        ports = ["--port", "0", "--tls-port", str(self.port)] if self.tls_port else ["--port", str(self.port)]
        cmd = ["redis-server", *ports, "--bind", "127.0.0.1", "--save", "", "--dir", str(self.workdir)]
        self.proc = subprocess.Popen([*cmd, *self.extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _watch(self.proc.pid)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {cmd}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not listen on {self.port} within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None
