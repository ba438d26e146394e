from __future__ import annotations

import time

import pytest

from sim import SimConfig, Simulator
from sim.writers import FileWriter, KafkaWriter


def test_file_writer_writes_one_json_lines_file_per_topic_in_arrival_order(tmp_path):
    sim = Simulator(SimConfig(days=1, n_users=500, requests_per_day=2000, malformed_rate=0.01))
    records = []
    with FileWriter(tmp_path / "out", topic_prefix="t1.") as writer:
        for chunk in sim.run():
            writer.write(chunk.records)
            records.extend(chunk.records)
    counts = writer.close()
    assert sum(counts.values()) == len(records)
    for topic, n in counts.items():
        lines = (tmp_path / "out" / f"{topic}.jsonl").read_bytes().splitlines()
        assert len(lines) == n
        assert lines == [r.value for r in records if "t1." + r.topic == topic]


def test_file_writer_replaces_files_of_an_earlier_run(tmp_path):
    from sim.noise import SimRecord

    record = SimRecord("ad.clicks", b"k", b"{}", 0, 0)
    for _ in range(2):
        writer = FileWriter(tmp_path)
        writer.write([record])
        assert writer.close() == {"ad.clicks": 1}
    assert (tmp_path / "ad.clicks.jsonl").read_bytes() == b"{}\n"


def test_kafka_writer_fails_fast_and_clearly_when_no_broker_answers():
    started = time.monotonic()
    with pytest.raises(
        ConnectionError, match=r"KafkaWriter: no Kafka broker answered at '127.0.0.1:9' within 1s"
    ):
        KafkaWriter("127.0.0.1:9", timeout_s=1.0)
    assert time.monotonic() - started < 10
