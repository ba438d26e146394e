"""Start, stop and report the local Kafka broker (KRaft) and Redis server the project runs on.

    python -m scripts.services start [--ttl SECONDS]   # free loopback ports, waits for health
    python -m scripts.services status
    python -m scripts.services stop

Both servers listen on 127.0.0.1 only, keep their data under the work directory (default
``.work/services``, env ADLOOP_WORK_DIR) and stop by themselves: a watchdog ends them after
``--ttl`` seconds or when the process named by ``--owner-pid`` exits. Ports come from
ADLOOP_KAFKA_PORT / ADLOOP_REDIS_PORT when set (a taken port is an error), else free ones.
The addresses are written to ``<work>/services.json`` for tests and jobs to read.
Every failure is one line on stderr and exit status 1, never a hang.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORK = ROOT / ".work"
HEALTH_TIMEOUT_S = 60.0


class ServiceError(RuntimeError):
    """A service could not start; the message is the one line the user sees."""


@dataclass(frozen=True)
class Services:
    kafka_bootstrap: str
    redis_url: str
    kafka_pid: int
    redis_pid: int
    watchdog_pid: int
    work_dir: str

    @classmethod
    def load(cls, work_dir: Path) -> Services:
        path = work_dir / "services" / "services.json"
        if not path.exists():
            raise ServiceError(
                f"no services running: {path} not found (run: python -m scripts.services start)"
            )
        return cls(**json.loads(path.read_text()))


def work_dir() -> Path:
    return Path(os.environ.get("ADLOOP_WORK_DIR", DEFAULT_WORK)).resolve()


def port_from_env(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ServiceError(f"{name}: expected a port number in 1..65535, found {raw!r}")
    return int(raw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_port_free(port: int, what: str) -> None:
    with socket.socket() as s:
        # Connections of a server stopped a moment ago linger in TIME_WAIT; the servers bind with
        # SO_REUSEADDR, so only a listening socket makes the port taken.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise ServiceError(f"{what} port {port} on 127.0.0.1 is already taken") from None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise ServiceError(
            "java not found on PATH: install a JDK 17 (apt-get install openjdk-17-jdk-headless)"
        )
    return java


def _kafka_classpath(jars: Path) -> str:
    if not list(jars.glob("kafka_2.13-*.jar")):
        raise ServiceError(f"Kafka jars missing in {jars}: run scripts/setup.sh")
    return f"{jars}/*"


def _redis_server() -> str:
    exe = shutil.which("redis-server")
    if exe is None:
        raise ServiceError(
            "redis-server not found on PATH: run scripts/setup.sh (apt-get install redis-server)"
        )
    return exe


def _kafka_properties(data: Path, port: int, controller_port: int) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={data}",
            "num.partitions=2",
            *SINGLE_BROKER,
            "",
        ]
    )


# A single broker's settings: one replica of the internal topics, no invented topics.
SINGLE_BROKER = (
    "offsets.topic.replication.factor=1",
    "transaction.state.log.replication.factor=1",
    "transaction.state.log.min.isr=1",
    "share.coordinator.state.topic.replication.factor=1",
    "share.coordinator.state.topic.min.isr=1",
    "group.initial.rebalance.delay.ms=0",
    # Test topics are created explicitly; keep the broker from inventing misspelt ones.
    "auto.create.topics.enable=false",
    # Flink's exactly-once Kafka sink keeps transactions open across checkpoints.
    "transaction.max.timeout.ms=3600000",
    "log.retention.hours=-1",
)


def _log4j2(path: Path, log_file: Path) -> None:
    path.write_text(
        "\n".join(
            [
                "status = error",
                "appender.file.type = File",
                "appender.file.name = file",
                f"appender.file.fileName = {log_file}",
                "appender.file.layout.type = PatternLayout",
                "appender.file.layout.pattern = [%d] %p %m (%c)%n",
                "rootLogger.level = WARN",
                "rootLogger.appenderRef.file.ref = file",
                "logger.kafka.name = kafka",
                "logger.kafka.level = INFO",
                "",
            ]
        )
    )


def _spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with log.open("ab") as out:
        # A new session, so Ctrl-C in the caller's terminal does not reach the servers.
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _wait(check, what: str, proc: subprocess.Popen, log: Path, timeout: float = HEALTH_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            raise ServiceError(
                f"{what} exited with status {proc.returncode} at start: {' '.join(tail)} (log: {log})"
            )
        if check():
            return
        time.sleep(0.25)
    proc.kill()
    raise ServiceError(f"{what} not healthy after {timeout:.0f}s (log: {log})")


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _kafka_ready(bootstrap: str) -> bool:
    from confluent_kafka.admin import AdminClient

    try:
        md = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=1.0)
    except Exception:
        return False
    return bool(md.brokers)


def _cluster_id() -> str:
    """A random KRaft cluster id; never one starting with '-', which the CLI would take for a flag."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaBroker:
    """One KRaft broker (broker and controller in one process) on loopback, its data and logs under
    ``home``. It can be killed with SIGKILL and started again on the same ports and data, as a
    fault trial does. ``start(watch_ttl_s=...)`` also starts a watchdog that ends this start's
    process after that many seconds or once ``owner_pid`` exits."""

    def __init__(
        self,
        home: Path,
        port: int | None = None,
        controller_port: int | None = None,
        *,
        data: Path | None = None,
        owner_pid: int | None = None,
    ) -> None:
        self.home = home
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.data = data or home / "kafka-data"
        self.owner_pid = owner_pid
        self.process: subprocess.Popen | None = None
        self._jvm: list[str] = []

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def format(self) -> None:
        """Write the broker's config and format its storage (once, before the first start)."""
        self.data.mkdir(parents=True, exist_ok=True)
        props = self.home / "server.properties"
        props.write_text(_kafka_properties(self.data, self.port, self.controller_port))
        log4j = self.home / "log4j2.properties"
        _log4j2(log4j, self.home / "kafka.log")
        classpath = _kafka_classpath(work_dir() / "jars" / "kafka")
        self._jvm = [_java(), "-Xms256m", "-Xmx768m", f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath]
        fmt = subprocess.run(
            [*self._jvm, "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(props)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if fmt.returncode != 0:
            last = (fmt.stderr or fmt.stdout).strip().splitlines()[-1:]
            raise ServiceError(f"Kafka storage format failed: {' '.join(last)}")

    def start(self, *, watch_ttl_s: float | None = None) -> subprocess.Popen:
        """Start the broker and wait until it answers; returns its process."""
        if not self._jvm:
            raise ServiceError("KafkaBroker.start: format() first")
        props = self.home / "server.properties"
        self.process = _spawn([*self._jvm, "kafka.Kafka", str(props)], self.home / "kafka.out")
        log = self.home / "kafka.log"
        _wait(lambda: _kafka_ready(self.bootstrap), f"Kafka on {self.bootstrap}", self.process, log)
        if watch_ttl_s is not None:
            _start_watchdog(watch_ttl_s, self.owner_pid, [self.process.pid])
        return self.process

    def kill(self) -> None:
        """SIGKILL the broker and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None:
            _terminate(self.process.pid)
            self.process.poll()


def start(ttl_s: float, owner_pid: int | None) -> Services:
    wd = work_dir()
    home = wd / "services"
    existing = home / "services.json"
    if existing.exists():
        running = Services(**json.loads(existing.read_text()))
        if pid_alive(running.kafka_pid) and pid_alive(running.redis_pid):
            raise ServiceError(
                f"services already running (kafka {running.kafka_bootstrap}, "
                f"redis {running.redis_url}): run stop first"
            )
        existing.unlink()
    # Missing programs fail here, before anything starts.
    _java()
    _kafka_classpath(wd / "jars" / "kafka")
    redis_exe = _redis_server()

    kafka_port = port_from_env("ADLOOP_KAFKA_PORT")
    redis_port = port_from_env("ADLOOP_REDIS_PORT")
    for port, what in ((kafka_port, "Kafka"), (redis_port, "Redis")):
        if port is not None:
            ensure_port_free(port, what)
    kafka_port = kafka_port or free_port()
    redis_port = redis_port or free_port()
    controller_port = free_port()

    if home.exists():
        shutil.rmtree(home)
    (home / "kafka-data").mkdir(parents=True)
    (home / "redis-data").mkdir(parents=True)

    redis_log = home / "redis.log"
    redis = _spawn(
        [
            redis_exe,
            "--bind",
            "127.0.0.1",
            "--port",
            str(redis_port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(home / "redis-data"),
            "--protected-mode",
            "yes",
        ],
        redis_log,
    )
    try:
        _wait(lambda: _redis_ping(redis_port), f"Redis on 127.0.0.1:{redis_port}", redis, redis_log)

        broker = KafkaBroker(home, kafka_port, controller_port, data=home / "kafka-data")
        broker.format()
        kafka = broker.start()
        bootstrap = broker.bootstrap
    except BaseException:
        redis.kill()
        raise

    watchdog = _start_watchdog(ttl_s, owner_pid, [kafka.pid, redis.pid])
    services = Services(
        bootstrap, f"redis://127.0.0.1:{redis_port}/0", kafka.pid, redis.pid, watchdog.pid, str(wd)
    )
    existing.write_text(json.dumps(asdict(services), indent=2))
    return services


@contextmanager
def throwaway(prefix: str, ttl_s: float = 3 * 3600) -> Iterator[tuple[Path, Services]]:
    """A temporary work directory with the project's jars linked in, and Kafka and Redis started
    under it (``ADLOOP_WORK_DIR`` points there); yields (directory, services), and stops them at
    the end. For benchmarks, which must not touch the project's own services."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(tmp)
        os.environ["ADLOOP_WORK_DIR"] = str(work / "services")
        (work / "services").mkdir()
        (work / "services" / "jars").symlink_to(DEFAULT_WORK / "jars")
        running = start(ttl_s=ttl_s, owner_pid=os.getpid())
        try:
            yield work, running
        finally:
            stop()


def stop() -> list[str]:
    path = work_dir() / "services" / "services.json"
    if not path.exists():
        return []
    services = Services(**json.loads(path.read_text()))
    stopped = []
    for name, pid in (
        ("kafka", services.kafka_pid),
        ("redis", services.redis_pid),
        ("watchdog", services.watchdog_pid),
    ):
        if _terminate(pid):
            stopped.append(f"{name} (pid {pid})")
    path.unlink()
    return stopped


def _terminate(pid: int, grace_s: float = 15.0) -> bool:
    if not pid_alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            # Reap our own child if it is one; otherwise just poll for its exit.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return True


def _start_watchdog(ttl_s: float, owner_pid: int | None, pids: list[int]) -> subprocess.Popen:
    """A detached process that ends ``pids`` after ``ttl_s`` seconds or once ``owner_pid`` exits."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scripts.services",
            "_watchdog",
            "--ttl",
            str(ttl_s),
            "--owner-pid",
            str(owner_pid or 0),
            "--pids",
            *map(str, pids),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _watchdog(ttl_s: float, owner_pid: int, pids: list[int]) -> None:
    deadline = time.monotonic() + ttl_s
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        if owner_pid and not pid_alive(owner_pid):
            break
        time.sleep(1.0)
    for pid in pids:
        _terminate(pid)


def status() -> str:
    try:
        services = Services.load(work_dir())
    except ServiceError as e:
        return str(e)
    kafka = "up" if pid_alive(services.kafka_pid) and _kafka_ready(services.kafka_bootstrap) else "down"
    redis_port = int(services.redis_url.rsplit(":", 1)[1].split("/")[0])
    redis = "up" if pid_alive(services.redis_pid) and _redis_ping(redis_port) else "down"
    return f"kafka {services.kafka_bootstrap} {kafka}; redis {services.redis_url} {redis}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.services", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start_p = sub.add_parser("start", help="start Kafka and Redis on loopback and wait until healthy")
    start_p.add_argument("--ttl", type=float, default=4 * 3600, help="stop them after this many seconds")
    start_p.add_argument("--owner-pid", type=int, default=None, help="stop them when this process exits")
    sub.add_parser("stop", help="stop the services this work directory started")
    sub.add_parser("status", help="report whether they are up")
    dog = sub.add_parser("_watchdog")
    dog.add_argument("--ttl", type=float, required=True)
    dog.add_argument("--owner-pid", type=int, required=True)
    dog.add_argument("--pids", type=int, nargs="+", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            s = start(args.ttl, args.owner_pid)
            print(
                f"kafka {s.kafka_bootstrap} (pid {s.kafka_pid}); redis {s.redis_url} (pid {s.redis_pid}); "
                f"stop after {args.ttl:.0f}s"
            )
        elif args.command == "stop":
            stopped = stop()
            print("stopped " + ", ".join(stopped) if stopped else "nothing running")
        elif args.command == "status":
            print(status())
        else:
            _watchdog(args.ttl, args.owner_pid, args.pids)
    except ServiceError as e:
        print(f"services: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
