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
