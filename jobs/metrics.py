"""The feedback job's own metrics (group ``adloop``), read from Flink's REST API.

    python -m jobs.metrics --rest http://127.0.0.1:8081 [--job <job id>]

Counters (summed over operators and subtasks): ``dlq_records``, ``late_records`` (the SQL part),
``rewards_applied_<agent>``, ``policies_published``, ``publish_failures``, ``learner_errors``,
``learner_drifts`` (the learner operator);
gauge ``publish_latency_ms`` (the largest over subtasks). A cluster's REST API is the JobManager's
(``rest.port``, 8081 by default); the local mini-cluster serves one when ``rest.bind-port`` is set.
Flink refreshes the values it serves every ``metrics.fetcher.update-interval`` (10 s by default).
A counter shows up once it has counted something (``dlq_records`` with the first dead letter,
``publish_failures`` with the first failure): a missing one is 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
import urllib.request
from typing import Any

GROUP = "adloop"
GAUGES = ("publish_latency_ms",)


def _get(rest_url: str, path: str, timeout_s: float) -> Any:
    with urllib.request.urlopen(f"{rest_url.rstrip('/')}{path}", timeout=timeout_s) as response:
        return json.load(response)


def running_job(rest_url: str, timeout_s: float = 5.0) -> str:
    """The id of the one running job; a ``ValueError`` naming what was found otherwise."""
    jobs = _get(rest_url, "/jobs", timeout_s)["jobs"]
    running = [j["id"] for j in jobs if j["status"] == "RUNNING"]
    if len(running) != 1:
        raise ValueError(f"expected one running job at {rest_url}, found {len(running)}: pass --job")
    return running[0]


def job_metrics(rest_url: str, job_id: str, timeout_s: float = 5.0) -> dict[str, float]:
    """Every ``adloop`` metric of the job by name: counters summed, gauges at their maximum.

    Metric ids of a vertex look like ``<subtask>.<operator>.adloop.<name>``."""
    totals: dict[str, float] = {}
    for vertex in _get(rest_url, f"/jobs/{job_id}", timeout_s)["vertices"]:
        path = f"/jobs/{job_id}/vertices/{vertex['id']}/metrics"
        ids = [m["id"] for m in _get(rest_url, path, timeout_s) if f".{GROUP}." in m["id"]]
        if not ids:
            continue
        query = ",".join(urllib.parse.quote(i, safe="") for i in ids)
        for metric in _get(rest_url, f"{path}?get={query}", timeout_s):
            name = metric["id"].rsplit(f".{GROUP}.", 1)[1]
            value = float(metric["value"])
            if name in GAUGES:
                totals[name] = max(totals.get(name, value), value)
            else:
                totals[name] = totals.get(name, 0.0) + value
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.metrics", description=__doc__.splitlines()[0])
    parser.add_argument("--rest", default="http://127.0.0.1:8081", help="Flink REST API address")
    parser.add_argument("--job", default=None, help="job id (default: the one running job)")
    args = parser.parse_args(argv)
    try:
        job_id = args.job or running_job(args.rest)
        metrics = job_metrics(args.rest, job_id)
    except (OSError, ValueError) as e:
        print(f"jobs.metrics: {e}", file=sys.stderr)
        return 2
    for name in sorted(metrics):
        print(f"{name}\t{metrics[name]:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
