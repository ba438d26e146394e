"""The job's views that the Java functions read or write have exactly the columns of the shared
schemas (sql/schema.py), which Schemas.java carries to the Java side."""

from __future__ import annotations

import re

import pytest

from config import app as app_config
from sql import pipeline, schema

VIEWS = {
    "click_events": schema.CLICK_EVENTS_COLUMNS,
    "attribution_events": schema.ATTRIBUTION_EVENTS_COLUMNS,
    "learner_batches": schema.BATCH_COLUMNS,
}


@pytest.fixture(scope="module")
def job_views(t_env):
    from jobs.feedback_job import execute_ddl

    for statement in pipeline.ddl_statements(app_config.load(env={})):
        execute_ddl(t_env, statement)
    return t_env


def _described(t_env, view: str) -> dict[str, str]:
    with t_env.execute_sql(f"DESCRIBE {view}").collect() as rows:
        described = {row[0]: row[1] for row in rows}
    return {name: re.sub(r" NOT NULL| \*ROWTIME\*|`", "", t) for name, t in described.items()}


def _spec(columns: str) -> dict[str, str]:
    return {name: sql_type for name, sql_type in schema.columns(columns).items()}


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_the_view_has_the_shared_columns(job_views, view):
    assert _described(job_views, view) == _spec(VIEWS[view])


def test_the_learner_operators_outputs_have_the_shared_columns():
    from pyflink.common import Types

    from operators.learner_operator import LEARNER_ERRORS, OUTPUT_TYPE

    sql_types = {
        "STRING": Types.STRING(),
        "INT": Types.INT(),
        "BIGINT": Types.LONG(),
        "BOOLEAN": Types.BOOLEAN(),
    }
    for type_info, spec in (
        (OUTPUT_TYPE, schema.POLICY_UPDATE_COLUMNS),
        (LEARNER_ERRORS.type_info, schema.DLQ_COLUMNS),
    ):
        expected = schema.columns(spec)
        assert type_info.get_field_names() == list(expected)
        assert type_info.get_field_types() == [sql_types[t] for t in expected.values()]


def test_the_functions_outputs_have_the_shared_columns(job_views):
    outcomes = _described(job_views, "impression_outcomes")
    expected = _spec(schema.CLICK_OUTCOME_COLUMNS)
    assert {n: outcomes[n] for n in expected} == expected
    credits = _described(job_views, "impression_credits")
    expected = _spec(schema.CREDIT_COLUMNS)
    assert {n: credits[n] for n in expected} == expected
