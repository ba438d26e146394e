"""``ADLOOP_CLICK_OUTCOMES`` through the generated ``impression_outcomes`` view, on the mini-cluster:
which click counts for an impression, and that every impression gets exactly one outcome."""

from __future__ import annotations

from attribution.config import AttributionConfig, RewardConfig
from sql import attribution, ingest, schema

T = 1_735_689_600_000
MINUTE = 60_000
HOUR = 60 * MINUTE
BOUND_MS = 15 * MINUTE  # the input's out-of-orderness bound
BULK = 500


def _events() -> list[tuple[int, str, int, int]]:
    """(arrival, impression_id, ts, is_click): the input in arrival order is sorted by arrival."""
    events = [
        (T, "a", T, 0),  # clicked inside the window
        (T + 10 * MINUTE, "a", T + 10 * MINUTE, 1),
        (T + MINUTE, "b", T + MINUTE, 0),  # its only click comes after the window
        (T + 2 * HOUR, "b", T + 2 * HOUR, 1),
        (T + 7 * MINUTE, "c", T + 7 * MINUTE, 1),  # the click arrives before its impression
        (T + 7 * MINUTE + 1, "c", T + 3 * MINUTE, 0),
        (T + 4 * MINUTE, "d", T + 4 * MINUTE, 0),  # two clicks: the first to arrive counts
        (T + 30 * MINUTE, "d", T + 30 * MINUTE, 1),
        (T + 30 * MINUTE + 1, "d", T + 20 * MINUTE, 1),
        (T + 5 * MINUTE, "e", T + 5 * MINUTE, 1),  # a click without an impression
        (T + 5 * MINUTE, "f", T + 5 * MINUTE, 1),  # a click before its impression's time
        (T + 6 * MINUTE, "f", T + 6 * MINUTE, 0),
    ]
    # Many impressions whose windows end one after another: each one's timer must fire.
    for i in range(BULK):
        ts = T + 3 * HOUR + i * MINUTE
        events.append((ts, f"i{i}", ts, 0))
        if i % 5 == 0:
            events.append((ts + 10 * MINUTE, f"i{i}", ts + 10 * MINUTE, 1))
    return sorted(events)


def test_each_impression_gets_one_outcome_with_its_first_counted_click(t_env, tmp_path):
    path = tmp_path / "click_events.csv"
    path.write_text("".join(f"{imp},{ts},{is_click}\n" for _, imp, ts, is_click in _events()))
    for statement in ingest.function_statements():
        t_env.execute_sql(statement)
    t_env.execute_sql(f"""CREATE TEMPORARY TABLE click_input (
  impression_id STRING, ts BIGINT, is_click INT,
  event_time AS TO_TIMESTAMP_LTZ(ts, 3),
  WATERMARK FOR event_time AS event_time - INTERVAL '{BOUND_MS // MINUTE}' MINUTE
) WITH ('connector' = 'filesystem', 'path' = '{path}', 'format' = 'csv')""")
    # The columns click_events has in the job (sql/attribution.py), from the test input.
    t_env.execute_sql(f"""CREATE TEMPORARY VIEW click_events AS
SELECT impression_id, event_time, is_click, ts, CONCAT('user-', impression_id) AS user_id,
       'c1' AS campaign_id, 's1' AS segment, CAST(0.5 AS DOUBLE) AS win_price,
       ARRAY[CAST(1.0 AS DOUBLE)] AS features,
       CAST(ARRAY[ROW('bid', '1.0', 0.5, 1)] AS {schema.DECISIONS_TYPE}) AS decisions
FROM click_input WHERE is_click IS NOT NULL""")
    (outcomes_view,) = [
        s
        for s in attribution.view_statements(AttributionConfig(click_window_ms=HOUR), RewardConfig())
        if "VIEW IF NOT EXISTS impression_outcomes" in s
    ]
    t_env.execute_sql(outcomes_view)
    query = "SELECT impression_id, ts, click_ts, user_id, win_price FROM impression_outcomes"
    with t_env.execute_sql(query).collect() as results:
        rows = [tuple(row) for row in results]

    ids = [row[0] for row in rows]
    assert len(ids) == len(set(ids)), "an impression got more than one outcome"
    clicks = {row[0]: row[2] for row in rows}
    expected = {"a": T + 10 * MINUTE, "b": None, "c": T + 7 * MINUTE, "d": T + 30 * MINUTE, "f": None}
    expected.update(
        {f"i{i}": T + 3 * HOUR + i * MINUTE + 10 * MINUTE if i % 5 == 0 else None for i in range(BULK)}
    )
    assert clicks == expected
    # The impression's own columns come out with its outcome, clicked or not.
    by_id = {row[0]: row for row in rows}
    assert by_id["c"][1:] == (T + 3 * MINUTE, T + 7 * MINUTE, "user-c", 0.5)
    assert by_id["b"][1:] == (T + MINUTE, None, "user-b", 0.5)
