"""The environment for Flink scripts the tests start as subprocesses.

Once a job with a Python function has run in the test process, PyFlink has written its Python
worker's variables into this process's ``os.environ`` (seen with ``execute_and_collect``):
``FLINK_CONF_DIR`` pointing at PyFlink's default conf, ``PYFLINK_GATEWAY_DISABLED`` and others.
A script started afterwards would inherit them; the SQL client, for one, then reads PyFlink's
default conf and tries a cluster at localhost:8081 instead of its local mini-cluster.
"""

from __future__ import annotations

import os

PYFLINK_WORKER_VARIABLES = frozenset(
    {
        "FLINK_BIN_DIR",
        "FLINK_CONF_DIR",
        "FLINK_HOME",
        "FLINK_LIB_DIR",
        "FLINK_OPT_DIR",
        "FLINK_PLUGINS_DIR",
        "PYFLINK_GATEWAY_DISABLED",
        "PYTHON_LOOPBACK_SERVER_ADDRESS",
        "_PYFLINK_CONN_INFO_PATH",
        "_PYTHON_WORKER_MEMORY_LIMIT",
    }
)


def script_environ(**overrides: str) -> dict[str, str]:
    """This process's environment without PyFlink's worker variables, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if k not in PYFLINK_WORKER_VARIABLES}
    return {**env, **overrides}
