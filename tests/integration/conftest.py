"""Real Kafka and Redis for the integration tier, started once per test session by the project.

They listen on loopback, on free ports, and stop when the session ends (or, should pytest die,
when the services' watchdog sees this process gone).
"""

from __future__ import annotations

import os
import uuid

import pytest

from scripts import services as svc


@pytest.fixture(scope="session")
def services(tmp_path_factory):
    work = tmp_path_factory.mktemp("services-work")
    jars = svc.work_dir() / "jars"
    (work / "jars").symlink_to(jars)
    previous = os.environ.get("ADLOOP_WORK_DIR")
    os.environ["ADLOOP_WORK_DIR"] = str(work)
    try:
        running = svc.start(ttl_s=3 * 3600, owner_pid=os.getpid())
        yield running
        svc.stop()
    finally:
        if previous is None:
            os.environ.pop("ADLOOP_WORK_DIR", None)
        else:
            os.environ["ADLOOP_WORK_DIR"] = previous


@pytest.fixture
def unique_prefix(request) -> str:
    """A topic / key prefix no other test uses: ``t<8 hex>.<test name>.``"""
    name = request.node.name.replace("[", "_").replace("]", "").replace("/", "_")[:40]
    return f"t{uuid.uuid4().hex[:8]}.{name}."


@pytest.fixture
def store(services, unique_prefix: str):
    """A policy store on the session's Redis under the test's own key prefix, purged afterwards."""
    from state.policy_store import RedisPolicyStore

    s = RedisPolicyStore(services.redis_url, key_prefix=unique_prefix.rstrip("."))
    yield s
    s.purge()
    s.close()
