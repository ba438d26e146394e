from __future__ import annotations

import pytest

from config import app as app_config

LINGER, BATCH = "ADLOOP_KAFKA_PRODUCER_LINGER_MS", "ADLOOP_KAFKA_PRODUCER_BATCH_BYTES"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({LINGER: "-1"}, "'kafka.producer_linger_ms': expected an integer >= 0, found -1"),
        ({BATCH: "100"}, "'kafka.producer_batch_bytes': expected an integer >= 1024 (bytes), found 100"),
        ({LINGER: "soon"}, f"'kafka.producer_linger_ms (from {LINGER})': expected an integer, found 'soon'"),
    ],
)
def test_bad_producer_settings_fail_naming_key_expected_and_found(env, message):
    with pytest.raises(ValueError) as error:
        app_config.load(env=env)
    assert message in str(error.value)


def test_producer_settings_reach_every_kafka_sink():
    from sql import outputs

    cfg = app_config.load(env={LINGER: "7", BATCH: "65536"})
    sinks = [s for s in outputs.sink_statements(cfg) if "'connector' = 'kafka'" in s]
    assert len(sinks) == 4
    for ddl in sinks:
        assert "'properties.linger.ms' = '7'" in ddl
        assert "'properties.batch.size' = '65536'" in ddl
