from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def t_env():
    """A streaming table environment on the local mini-cluster, shared by a module's tests."""
    from jobs.runtime import table_environment

    return table_environment(parallelism=1)
