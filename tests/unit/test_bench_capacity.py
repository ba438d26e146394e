"""The capacity bench's verdicts: when a step holds, how lag growth and state growth are read."""

from __future__ import annotations

import pytest

from bench.capacity_report import held, lag_growing, state_growth
from bench.live_job import Probes, thread_group

pytestmark = pytest.mark.unit


def _step(p99: float = 0.5, missing: int = 0, growing: bool = False) -> dict:
    return {"p99": p99, "missing": missing, "lag_growing": growing}


def test_a_step_holds_only_with_p99_within_a_second_every_probe_and_no_growing_lag():
    assert held(_step())
    assert held(_step(p99=1.0))
    assert not held(_step(p99=1.01))
    assert not held(_step(missing=1))
    assert not held(_step(growing=True))


def test_lag_grows_when_it_climbs_faster_than_a_share_of_the_rate_and_ends_above_a_second_of_input():
    rate = 10_000
    climbing = [(t, 200.0 * t) for t in range(0, 60, 5)]  # 200 records/s more each second: 2% of the rate
    assert lag_growing(climbing, rate)
    # The same slope that ends under a second of input is a fluctuation, not a backlog.
    assert not lag_growing([(t, 20.0 * t) for t in range(0, 60, 5)], rate)
    # A large but steady lag (records in flight) is not growing.
    assert not lag_growing([(t, 30_000.0 + (t % 10)) for t in range(0, 60, 5)], rate)
    # Missing samples (the metric not registered yet) are skipped.
    assert lag_growing([(0, float("nan"))] + climbing, rate)


def test_a_probe_not_seen_counts_as_its_age_so_p99_is_a_lower_bound():
    probes = Probes(sent={"a": 100.0, "b": 100.0}, seen={"a": 100.3})
    assert probes.latencies(["a", "b"], now=130.0) == pytest.approx([0.3, 30.0])


def test_state_growth_is_per_event_over_the_second_half_and_per_operator():
    states = [
        (
            float(t),
            10_000 * t,
            {"id": t, "bytes": 1_000 + 300 * 10_000 * t, "per_vertex": {"a": 200 * 10_000 * t}},
        )
        for t in range(0, 100, 10)
    ]
    growth = state_growth(states)
    assert growth["bytes_per_event"] == pytest.approx(300.0)
    assert growth["per_vertex"]["a"] == pytest.approx(200.0)
    assert growth["span_s"] == pytest.approx(40.0)  # checkpoints at 50 .. 90 s
    assert state_growth(states[:3]) == {}  # too few checkpoints to tell


def test_threads_are_grouped_by_what_they_run():
    tasks = {"ProcessTableFunction[52] -> Calc[53]": "click outcomes"}
    assert thread_group("ProcessTableFunction[52] -> Calc[53] (1/1)#0", tasks) == "task: click outcomes"
    assert thread_group("C2 CompilerThread0", tasks) == "JIT compiler C2"
    assert thread_group("rocksdb:low", tasks) == "RocksDB compaction and flush (native)"
    assert thread_group("grpc-default-worker-ELG-3-1", tasks) == "grpc-default-worker-ELG-N-N"


def _measured(rate: float, p99: float, growing: bool = False) -> dict:
    samples = [
        {
            "t": 100.0 + 5 * i,
            "lag": 0.0,
            "heap_mb": 300.0 + (i % 3) * 100,
            "job_cpu_s": i,
            "bench_cpu_s": 0.1 * i,
        }
        for i in range(12)
    ]
    return {
        "rate": rate,
        "produced": rate,
        "probes": 120,
        "missing": 0,
        "p50": p99 / 2,
        "p99": p99,
        "lag_start": 0.0,
        "lag_end": 0.0,
        "lag_max": 0.0,
        "lag_slope": 0.0,
        "lag_growing": growing,
        "job_cores": 1.2,
        "bench_cores": 0.1,
        "heap_mb_max": 500.0,
        "samples": samples,
        "profile": {"task: attribution": 0.3, "JIT compiler C2": 0.02},
    }


def test_the_report_names_the_knee_the_ratios_and_each_soak_verdict(tmp_path):
    import argparse

    from bench.capacity_report import plot, render

    args = argparse.Namespace(
        rates="8000,10000,12000", step_warmup=30.0, step_seconds=60.0, soak_minutes=20.0, replay_repeats=1
    )
    steps = [_measured(8000, 0.4), _measured(10000, 0.6), _measured(12000, 1.6)]
    replays = [
        {"input": "all", "records": 700, "sustained": 40_000.0, "rate": 20_000.0, "cpu_s": 70.0},
        {"input": "no auctions", "records": 280, "sustained": 16_000.0, "rate": 9_000.0, "cpu_s": 65.0},
    ]
    soaked = _measured(8000, 0.5) | {
        "t0": 100.0,
        "minutes": [(0, 0.3, 0.5), (1, 0.3, 1.4)],
        "states": [
            (
                10.0 * i,
                80_000 * i,
                {"id": i, "bytes": 500 * 80_000 * i, "per_vertex": {"attribution": 250 * 80_000 * i}},
            )
            for i in range(1, 9)
        ],
    }
    png = tmp_path / "soak.png"
    plot(soaked, 8000, png)
    assert png.stat().st_size > 10_000
    text = render(args, steps, soaked, 8000, replays, "2026-01-01 00:00", png)
    assert "**Knee: 10,000 events/s.**" in text
    assert "**knee / replay 0.25**" in text and "**knee / replay 0.62**" in text
    assert "p99 <= 1 s in every minute: **no**" in text  # minute 1 had 1.4 s
    assert "consumer lag not growing: **yes**" in text
    assert "**500 bytes of checkpointed state per event read**" in text
    assert "| attribution | 250.0 |" in text
    assert "| task: attribution | 0.30 | 0.30 |" in text  # the last step that held and the first that did not
