"""Reading partitions, walking a table, good errors, and HTML Data Docs."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from quality.check import PartitionError, check_partition, check_table

from .partitions import FIRST_INITIAL, SCHEMA, valid_rows, write_partition


def test_missing_path_is_named(tmp_path):
    missing = tmp_path / "dt=2024-05-01" / "hr=13"
    with pytest.raises(PartitionError, match="hr=13.*does not exist"):
        check_partition(missing)
    with pytest.raises(PartitionError, match="does not exist"):
        check_table(tmp_path / "nowhere")


def test_empty_partition_directory(tmp_path):
    partition = tmp_path / "dt=2024-05-01" / "hr=13"
    partition.mkdir(parents=True)
    # Uncommitted sink files are hidden and must not count as data.
    (partition / ".part-0.inprogress").write_bytes(b"partial")
    with pytest.raises(PartitionError, match="no Parquet files \\(empty partition\\)"):
        check_partition(partition)


def test_partition_with_zero_rows(tmp_path):
    partition = write_partition(tmp_path, [])
    with pytest.raises(PartitionError, match="no rows \\(empty partition\\)"):
        check_partition(partition)


def test_missing_column_names_the_column_and_the_schema(tmp_path):
    partition = tmp_path / "dt=2024-05-01" / "hr=13"
    partition.mkdir(parents=True)
    table = pa.Table.from_pylist(valid_rows(), schema=SCHEMA).drop_columns(["propensity"])
    pq.write_table(table, partition / "part-0.parquet")
    with pytest.raises(PartitionError) as caught:
        check_partition(partition)
    message = str(caught.value)
    assert "missing column 'propensity'" in message
    assert "ad.rewards v1" in message and "propensity: number" in message and "reward_ts: integer" in message


def test_single_file_skips_the_partition_hour_check(tmp_path):
    partition = write_partition(tmp_path, valid_rows())
    report = check_partition(partition / "part-0.parquet")
    assert report.success
    assert report.partition == "dt=2024-05-01/hr=13"
    loose = tmp_path / "loose.parquet"
    (partition / "part-0.parquet").rename(loose)
    report = check_partition(loose)
    assert report.success and report.partition == "loose.parquet"
    assert "reward_ts_in_partition_hour" not in report.names()


def test_partition_split_over_several_files(tmp_path):
    rows = valid_rows()
    partition = write_partition(tmp_path, rows[:9])
    pq.write_table(pa.Table.from_pylist(rows[9:], schema=SCHEMA), partition / "part-1.parquet")
    report = check_partition(partition)
    assert report.success and report.rows == 18


def _table(tmp_path):
    """Three partitions: 12:00 valid, 13:00 with a zero propensity, 14:00 without a column."""
    root = tmp_path / "ad_rewards"
    hour_ms = 3_600_000
    early = [dict(r, reward_ts=r["reward_ts"] - hour_ms) for r in valid_rows()]
    write_partition(root, early, hr="12")
    bad = valid_rows()
    bad[FIRST_INITIAL]["propensity"] = 0.0
    write_partition(root, bad, hr="13")
    broken = root / "dt=2024-05-01" / "hr=14"
    broken.mkdir(parents=True)
    pq.write_table(pa.table({"decision_id": ["i1:bid"]}), broken / "part-0.parquet")
    return root


def test_check_table_walks_partitions_in_order_and_keeps_going(tmp_path):
    reports = check_table(_table(tmp_path))
    assert [r.partition for r in reports] == [
        "dt=2024-05-01/hr=12",
        "dt=2024-05-01/hr=13",
        "dt=2024-05-01/hr=14",
    ]
    assert [r.success for r in reports] == [True, False, False]
    assert [o.name for o in reports[1].failed] == ["propensity_in_(0,1]"]
    assert reports[2].error is not None and "missing column 'schema_version'" in reports[2].error


def test_table_without_partitions(tmp_path):
    with pytest.raises(PartitionError, match="no dt=yyyy-MM-dd/hr=HH partitions"):
        check_table(tmp_path)


def test_data_docs_are_written(tmp_path):
    docs = tmp_path / "docs"
    reports = check_table(_table(tmp_path), docs_dir=docs)
    assert (docs / "index.html").is_file()
    pages = sorted(p.name for p in (docs / "validations").rglob("*.html"))
    assert pages == ["ad_rewards-dt=2024-05-01_hr=12.html", "ad_rewards-dt=2024-05-01_hr=13.html"]
    assert reports[0].docs_url is not None and reports[0].docs_url.endswith("index.html")
    page = next((docs / "validations").rglob("*hr=13.html")).read_text()
    assert "propensity_in_(0,1]" in page


def test_data_docs_for_one_partition(tmp_path):
    docs = tmp_path / "docs"
    report = check_partition(write_partition(tmp_path, valid_rows()), docs_dir=docs)
    assert (docs / "index.html").is_file()
    assert report.docs_url == (docs / "index.html").as_uri()


def test_two_files_with_the_same_name_get_separate_validations(tmp_path):
    from quality.check import _check_paths
    from quality.expectations import DEFAULT_CONFIG

    paths = []
    for folder in ("a", "b"):
        partition = write_partition(tmp_path / folder, valid_rows())
        paths.append((partition / "part-0.parquet").rename(tmp_path / folder / "rewards.parquet"))
    reports = _check_paths(paths, tmp_path / "docs", DEFAULT_CONFIG)
    assert [r.success for r in reports] == [True, True]
    pages = sorted(p.name for p in (tmp_path / "docs" / "validations").rglob("*.html"))
    assert pages == ["ad_rewards-rewards.parquet.html", "ad_rewards-rewards.parquet~2.html"]
