"""The learners receive each micro-batch's arms as an ``ARRAY<ROW>`` from SQL. In the job's Python
execution mode (process, flink-conf/config.yaml) every arm arrives intact; in PyFlink's thread mode
every element arrives as a copy of the last one, which is why the job does not use it. The thread
case is a strict xfail: when a PyFlink upgrade fixes it, it passes, the suite reports it, and
thread mode (half the freshness latency, README) is worth trying again."""

from __future__ import annotations

import json

import pytest

from jobs.runtime import environments

ARMS_QUERY = """SELECT k, ARRAY[ROW('a', CAST(1 AS DOUBLE)), ROW('b', CAST(2 AS DOUBLE)),
  ROW('c', CAST(3 AS DOUBLE))] AS arms
FROM (VALUES ('x'), ('y')) AS v(k)"""
EXPECTED = [["a", 1.0], ["b", 2.0], ["c", 3.0]]  # each row's arms, as Python should see them


def _arms_seen_by_python(mode: str | None) -> list[list[list]]:
    from pyflink.common.typeinfo import Types

    # No restarts: a job that fails here fails the call at once (thread mode, without pemja).
    overrides = {"restart-strategy.type": "none", **({"python.execution-mode": mode} if mode else {})}
    env, t_env = environments(1, overrides)
    rows = t_env.to_data_stream(t_env.sql_query(ARMS_QUERY))
    # A Python function, as the learner operator is: the arms cross into Python and back as text.
    seen = rows.map(lambda r: json.dumps([[arm[0], arm[1]] for arm in r.arms]), output_type=Types.STRING())
    with seen.execute_and_collect() as results:
        return sorted(json.loads(text) for text in results)


def test_the_job_s_mode_hands_python_every_element_of_an_array_of_rows():
    assert _arms_seen_by_python(None) == [EXPECTED, EXPECTED]


@pytest.mark.xfail(strict=True, reason="PyFlink 2.2.1 thread mode: ARRAY<ROW> elements become the last one")
def test_thread_mode_hands_python_every_element_of_an_array_of_rows():
    assert _arms_seen_by_python("thread") == [EXPECTED, EXPECTED]
