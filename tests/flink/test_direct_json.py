"""The ``adloop-json`` format (udf/.../DirectJsonFormatFactory.java), which the job's Kafka sinks
write with: the same rows through it and through Flink's ``json`` format read back equal."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

COLUMNS = """s STRING, d DOUBLE, n BIGINT, i INT, b BOOLEAN, xs ARRAY<DOUBLE>,
  r ROW<name STRING, v DOUBLE>, m MAP<STRING, STRING>"""

# Escapes, non-ASCII text (one character beyond U+FFFF), doubles in and out of the short-decimal
# path (JDK 17 prints 2e23 as 1.9999999999999998E23), non-finite doubles, nulls at every level.
ROWS = [
    "('plain', 0.5, 1735689600000, 3, TRUE, ARRAY[0.123, 1.0, -2.5], ROW('a', 0.25), MAP['k', 'v'])",
    "('quote \" backslash \\\\ tab' || CHR(9) || 'nl' || CHR(10) || 'ctl' || CHR(1), -0.0, -7, 0, FALSE,"
    " ARRAY[2e23, 1e-7, 123456.789], ROW(CAST(NULL AS STRING), 1e300), MAP['é', 'x'])",
    "('élève 😀 ✓', CAST('NaN' AS DOUBLE), 9223372036854775807, -2147483648, TRUE,"
    " ARRAY[CAST('Infinity' AS DOUBLE), CAST(NULL AS DOUBLE)], ROW('😀', -0.001),"
    " MAP['n', CAST(NULL AS STRING)])",
    "(CAST(NULL AS STRING), CAST(NULL AS DOUBLE), CAST(NULL AS BIGINT), CAST(NULL AS INT),"
    " CAST(NULL AS BOOLEAN), CAST(NULL AS ARRAY<DOUBLE>), CAST(NULL AS ROW<name STRING, v DOUBLE>),"
    " CAST(NULL AS MAP<STRING, STRING>))",
    "('', 1234567.125, 0, 1, FALSE, ARRAY[0.1, 0.30000000000000004, 9999999.999999], ROW('', 7.0),"
    " MAP['', ''])",
]


def _lines(directory: Path) -> list:
    found = [
        json.loads(line, parse_constant=lambda name: name)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and not path.name.startswith((".", "_"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    return sorted(found, key=lambda row: json.dumps(row, sort_keys=True))


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def test_rows_read_back_as_flinks_json_format_wrote_them(t_env, tmp_path):
    for fmt in ("json", "adloop-json"):
        t_env.execute_sql(f"""CREATE TEMPORARY TABLE out_{fmt.replace("-", "_")} ({COLUMNS}) WITH (
  'connector' = 'filesystem', 'path' = '{(tmp_path / fmt).as_uri()}', 'format' = '{fmt}')""")
    statements = t_env.create_statement_set()
    values = f"SELECT * FROM (VALUES {', '.join(ROWS)}) AS t(s, d, n, i, b, xs, r, m)"
    statements.add_insert_sql(f"INSERT INTO out_json {values}")
    statements.add_insert_sql(f"INSERT INTO out_adloop_json {values}")
    statements.execute().wait()

    flink, ours = _lines(tmp_path / "json"), _lines(tmp_path / "adloop-json")
    assert len(flink) == len(ROWS)
    assert len(ours) == len(flink)
    for want, got in zip(flink, ours, strict=True):
        assert _same(want, got), (want, got)
    raw = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "adloop-json").rglob("*") if p.is_file())
    assert "\\ud83d\\ude00" in raw.lower()  # beyond U+FFFF as an escaped pair, as Jackson writes it
    assert '"NaN"' in raw and '"Infinity"' in raw


def test_a_type_it_does_not_write_fails_when_the_job_is_planned(t_env, tmp_path):
    t_env.execute_sql(f"""CREATE TEMPORARY TABLE out_ts (id INT, seen TIMESTAMP(3)) WITH (
  'connector' = 'filesystem', 'path' = '{(tmp_path / "ts").as_uri()}', 'format' = 'adloop-json')""")
    with pytest.raises(Exception, match=r"adloop-json.*column .seen. is TIMESTAMP\(3\)"):
        t_env.execute_sql("INSERT INTO out_ts VALUES (1, TIMESTAMP '2026-01-01 00:00:00')").wait()
