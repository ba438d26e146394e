"""Every use of PyFlink's private members and of Flink's internal planner classes, in one place.

PyFlink has no API to plan a statement set and a DataStream conversion in one pass, nor to stop a
job with a savepoint in a chosen format, nor to make planning safe on any py4j thread. These
functions do it through the Java objects behind PyFlink's (``_j_tenv``, ``_j_table``,
``_j_statement_set``, ``_j_job_client``) and Flink classes that are not public API. They were
written and tested against :data:`TESTED_FLINK_VERSIONS`; :func:`check_flink_version` stops the
job at start on any other version, before any of them runs.
"""

from __future__ import annotations

from typing import Any

from pyflink.datastream import DataStream
from pyflink.java_gateway import get_gateway
from pyflink.table import StatementSet, StreamTableEnvironment, Table

TESTED_FLINK_VERSIONS = frozenset({"2.2.1"})


class UnsupportedFlinkVersion(RuntimeError):
    """The Flink version at hand is not one :data:`TESTED_FLINK_VERSIONS` names."""


def flink_version() -> str:
    """The Flink version of the running JVM (the mini-cluster's or the cluster client's)."""
    jvm = get_gateway().jvm
    return str(jvm.org.apache.flink.runtime.util.EnvironmentInformation.getVersion())


def check_flink_version(version: str | None = None) -> None:
    """Fail with a clear message unless ``version`` (default: the JVM's) was tested here.

    >>> check_flink_version("2.2.1")
    >>> check_flink_version("2.3.0")
    Traceback (most recent call last):
    ...
    jobs.planner.UnsupportedFlinkVersion: Flink 2.3.0: the job plans through Flink internals \
tested with Flink 2.2.1 only (jobs/planner.py); run it on Flink 2.2.1, or test jobs/planner.py \
on 2.3.0 and add it to TESTED_FLINK_VERSIONS
    """
    found = version if version is not None else flink_version()
    if found not in TESTED_FLINK_VERSIONS:
        tested = ", ".join(sorted(TESTED_FLINK_VERSIONS))
        raise UnsupportedFlinkVersion(
            f"Flink {found}: the job plans through Flink internals tested with Flink {tested} only "
            f"(jobs/planner.py); run it on Flink {tested}, or test jobs/planner.py on {found} and "
            "add it to TESTED_FLINK_VERSIONS"
        )


def seed_metadata_provider(t_env: StreamTableEnvironment) -> None:
    """Give the py4j thread that serves this Python thread Calcite's metadata provider.

    Calcite keeps it in a thread-local that Flink's planner sets only on the thread that built its
    cluster; py4j may serve a later call from another JVM thread (seen when one process plans
    several jobs), and planning there fails with ``NullPointerException: metadataHandlerProvider``
    (FLINK-36298, fixed after 2.2). Seeding it as Flink's own fix does makes planning on any thread
    safe. Call it right before planning: py4j serves consecutive calls of one Python thread from
    the same connection, hence the same JVM thread."""
    jvm = get_gateway().jvm
    loader = t_env._j_tenv.getPlanner().getClass().getClassLoader()

    def load(name: str) -> Any:
        return jvm.java.lang.Class.forName(name, True, loader)

    provider = load("org.apache.flink.table.planner.plan.metadata.FlinkDefaultRelMetadataProvider")
    instance = provider.getMethod("INSTANCE", _classes(jvm)).invoke(None, _objects(jvm))  # a Scala object
    janino = load("org.apache.calcite.rel.metadata.JaninoRelMetadataProvider")
    relmd = load("org.apache.calcite.rel.metadata.RelMetadataProvider")
    wrapped = janino.getMethod("of", _classes(jvm, relmd)).invoke(None, _objects(jvm, instance))
    query_base = load("org.apache.calcite.rel.metadata.RelMetadataQueryBase")
    query_base.getField("THREAD_PROVIDERS").get(None).set(wrapped)


def _classes(jvm: Any, *classes: Any) -> Any:
    array = get_gateway().new_array(jvm.java.lang.Class, len(classes))
    for i, cls in enumerate(classes):
        array[i] = cls
    return array


def _objects(jvm: Any, *objects: Any) -> Any:
    array = get_gateway().new_array(jvm.java.lang.Object, len(objects))
    for i, obj in enumerate(objects):
        array[i] = obj
    return array


def attach_with_stream(t_env: StreamTableEnvironment, statements: StatementSet, table: Table) -> DataStream:
    """Attach ``statements`` to the job together with ``table`` as a DataStream of ``Row``s, planned
    in one pass; returns the DataStream.

    ``to_data_stream`` plans its table on its own, and a single-output plan is optimised as one
    tree: every view it shares with the statement set's sinks (sources, parse, deduplication,
    attribution) would run twice, and views shared inside it would be copied once per reader. One
    pass over all the outputs plans each shared view once, exactly as the SQL-only job is planned:
    what ``toDataStream(table)`` does, with the statement set's operations in the same
    ``translate``."""
    jvm = get_gateway().jvm
    j_tenv, j_table = t_env._j_tenv, table._j_table
    catalog = j_tenv.getCatalogManager()
    schema = j_table.getResolvedSchema()
    produced = jvm.org.apache.flink.table.catalog.SchemaTranslator.createProducingResult(
        catalog.getDataTypeFactory(), schema, schema.toSourceRowDataType()
    )
    if produced.getProjections().isPresent() and list(produced.getProjections().get()) != list(
        schema.getColumnNames()
    ):
        raise RuntimeError(
            f"unexpected projection converting {list(schema.getColumnNames())} to a DataStream"
        )
    sink_table = catalog.resolveCatalogTable(
        jvm.org.apache.flink.table.catalog.ExternalCatalogTable(produced.getSchema())
    )
    to_stream = jvm.org.apache.flink.table.operations.ExternalModifyOperation(
        jvm.org.apache.flink.table.catalog.ContextResolvedTable.anonymous("datastream_sink", sink_table),
        j_table.getQueryOperation(),
        jvm.org.apache.flink.table.connector.ChangelogMode.insertOnly(),
        produced.getPhysicalDataType().orElse(sink_table.getResolvedSchema().toPhysicalRowDataType()),
    )
    operations = jvm.java.util.ArrayList(statements._j_statement_set.getOperations())
    operations.add(to_stream)
    seed_metadata_provider(t_env)
    transformations = j_tenv.getPlanner().translate(operations)
    if transformations.size() != operations.size():
        raise RuntimeError(
            f"planning {operations.size()} outputs gave {transformations.size()} transformations"
        )
    j_env = j_tenv.execEnv()
    for transformation in transformations:
        j_env.addOperator(transformation)
    j_env.configure(j_tenv.getConfig().getConfiguration())
    # The planner returns one transformation per output, in order: the DataStream's is the last.
    stream = transformations.get(transformations.size() - 1)
    return DataStream(jvm.org.apache.flink.streaming.api.datastream.DataStream(j_env, stream))


def stop_with_savepoint(job: Any, directory_uri: str, drain: bool = True) -> str:
    """Stop ``job`` (a PyFlink JobClient) with a savepoint in Flink's canonical format, which any
    state backend restores; with ``drain`` the sources end their input first (MAX_WATERMARK), so
    every event-time window and timer fires. Returns the savepoint's path. (PyFlink's
    ``stop_with_savepoint`` takes no format.)"""
    canonical = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType.CANONICAL
    return str(job._j_job_client.stopWithSavepoint(drain, directory_uri, canonical).get())
