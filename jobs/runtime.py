"""Flink environments for the jobs: config from ``flink-conf/config.yaml`` and the connector jars.

On the local mini-cluster (the default) the YAML file is flattened into a Flink Configuration;
on a standalone cluster the cluster reads it itself (FLINK_CONF_DIR=flink-conf) and only the jar
list is set here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import yaml
from pyflink.common import Configuration
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import EnvironmentSettings, StreamTableEnvironment

ROOT = Path(__file__).resolve().parent.parent
FLINK_CONF = ROOT / "flink-conf" / "config.yaml"
LOG4J = ROOT / "flink-conf" / "log4j.properties"


def work_dir() -> Path:
    """The project's work directory: ``ADLOOP_WORK_DIR``, default ``.work`` in the project."""
    return Path(os.environ.get("ADLOOP_WORK_DIR", ROOT / ".work")).resolve()


def jar_dir() -> Path:
    return work_dir() / "jars" / "flink"


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Flink's nested YAML as the flat ``a.b.c`` keys a Configuration takes.

    >>> flatten({"state": {"backend": {"type": "rocksdb"}}, "parallelism": {"default": 2}})
    {'state.backend.type': 'rocksdb', 'parallelism.default': '2'}
    """
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return flat


def connector_jars(directory: Path | None = None) -> list[str]:
    directory = directory or jar_dir()
    jars = sorted(directory.glob("*.jar"))
    if not any(j.name.startswith("flink-sql-connector-kafka") for j in jars):
        raise RuntimeError(f"Flink connector jars missing in {directory}: run scripts/setup.sh")
    return [j.as_uri() for j in jars]


def local_jvm_args(flat_conf: dict[str, str], environ: MutableMapping[str, str]) -> None:
    """Give the mini-cluster's JVM the TaskManager's JVM options (``env.java.opts.taskmanager``).

    The mini-cluster runs inside the JVM that PyFlink starts for this process, which reads only
    ``JVM_ARGS``; a cluster's TaskManagers read the options from flink-conf themselves. A
    ``JVM_ARGS`` the caller set wins, and under ``flink run`` (PYFLINK_GATEWAY_PORT) the JVM already
    runs.

    >>> env = {}
    >>> local_jvm_args({"env.java.opts.taskmanager": "-XX:+UseParallelGC"}, env)
    >>> env["JVM_ARGS"], env["LOG4J_PROPERTIES"].endswith("flink-conf/log4j.properties")
    ('-XX:+UseParallelGC', True)
    >>> env = {"JVM_ARGS": "-XX:+UseSerialGC", "LOG4J_PROPERTIES": "/etc/log4j.properties"}
    >>> local_jvm_args({"env.java.opts.taskmanager": "-XX:+UseParallelGC"}, env)
    >>> env
    {'JVM_ARGS': '-XX:+UseSerialGC', 'LOG4J_PROPERTIES': '/etc/log4j.properties'}
    """
    opts = flat_conf.get("env.java.opts.taskmanager", "").strip()
    if opts and "JVM_ARGS" not in environ and "PYFLINK_GATEWAY_PORT" not in environ:
        environ["JVM_ARGS"] = opts
    if "LOG4J_PROPERTIES" not in environ and "PYFLINK_GATEWAY_PORT" not in environ:
        # The project's logging (flink-conf/log4j.properties): no worker environment in the log.
        environ["LOG4J_PROPERTIES"] = str(LOG4J)


def flink_configuration(overrides: dict[str, str] | None = None) -> Configuration:
    flat_conf = flatten(yaml.safe_load(FLINK_CONF.read_text()))
    local_jvm_args(flat_conf, os.environ)  # before Configuration(), which starts the JVM
    conf = Configuration()
    # Python workers must run in this interpreter, which has the project and its dependencies.
    flat_conf |= {"python.executable": sys.executable, "python.client.executable": sys.executable}
    flat_conf["pipeline.jars"] = ";".join(connector_jars())
    settings = storage_dirs({**flat_conf, **changelog_with_checkpoints(overrides or {})}, work_dir())
    for key, value in settings.items():
        conf.set_string(key, value)
    return conf


CHECKPOINT_DIR = "execution.checkpointing.dir"
SAVEPOINT_DIR = "execution.checkpointing.savepoint-dir"
CHANGELOG_DIR = "state.changelog.dstl.dfs.base-path"


def storage_dirs(conf: dict[str, str], work: Path) -> dict[str, str]:
    """``conf`` with the checkpoint, savepoint and state-changelog directories it leaves unset:
    under the work directory, the changelog next to the checkpoints.

    >>> dirs = storage_dirs({}, Path("/w"))
    >>> dirs[CHECKPOINT_DIR], dirs[SAVEPOINT_DIR], dirs[CHANGELOG_DIR]
    ('file:///w/checkpoints', 'file:///w/savepoints', 'file:///w/checkpoints/changelog')
    >>> storage_dirs({CHECKPOINT_DIR: "s3://b/cp"}, Path("/w"))[CHANGELOG_DIR]
    's3://b/cp/changelog'
    """
    out = dict(conf)
    out.setdefault(CHECKPOINT_DIR, (work / "checkpoints").as_uri())
    out.setdefault(SAVEPOINT_DIR, (work / "savepoints").as_uri())
    out.setdefault(CHANGELOG_DIR, out[CHECKPOINT_DIR].rstrip("/") + "/changelog")
    return out


def changelog_with_checkpoints(overrides: dict[str, str]) -> dict[str, str]:
    """``overrides``, with the state changelog moved next to an overridden checkpoint directory.

    A test or a bench that gives a run its own checkpoint directory gets its own changelog too,
    rather than one shared with every other run; an explicit changelog path wins.

    >>> changelog_with_checkpoints({CHECKPOINT_DIR: "file:///w/checkpoints"})[CHANGELOG_DIR]
    'file:///w/checkpoints/changelog'
    >>> changelog_with_checkpoints({CHECKPOINT_DIR: "file:///w/c", CHANGELOG_DIR: "file:///x"})[CHANGELOG_DIR]
    'file:///x'
    >>> changelog_with_checkpoints({"parallelism.default": "2"})
    {'parallelism.default': '2'}
    """
    if CHECKPOINT_DIR not in overrides or CHANGELOG_DIR in overrides:
        return overrides
    return {**overrides, CHANGELOG_DIR: overrides[CHECKPOINT_DIR].rstrip("/") + "/changelog"}


def table_environment(
    parallelism: int = 1, overrides: dict[str, str] | None = None
) -> StreamTableEnvironment:
    """A streaming table environment on the mini-cluster (or the cluster ``flink run`` targets)."""
    return environments(parallelism, overrides)[1]


def environments(
    parallelism: int = 1, overrides: dict[str, str] | None = None
) -> tuple[StreamExecutionEnvironment, StreamTableEnvironment]:
    """The DataStream and Table environments of one job (the learners need both)."""
    env = StreamExecutionEnvironment.get_execution_environment(flink_configuration(overrides))
    env.set_parallelism(parallelism)
    settings = EnvironmentSettings.new_instance().in_streaming_mode().build()
    t_env = StreamTableEnvironment.create(env, environment_settings=settings)
    t_env.get_config().set("parallelism.default", str(parallelism))
    return env, t_env
