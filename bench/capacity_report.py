"""The capacity bench's verdicts (when a step holds, lag and state growth) and its report."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from pathlib import Path
from typing import Any

from bench.bench_attribution import _code_version, _flink_version

P99_LIMIT_S = 1.0
LAG_SLOPE_SHARE = 0.01  # lag growing: slope above this share of the rate ...
LAG_SECONDS = 1.0  # ... and the last lag above this many seconds of input


def slope_of(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, y)."""
    points = [(t, y) for t, y in points if y == y]
    if len(points) < 2:
        return float("nan")
    mt = statistics.fmean(t for t, _ in points)
    my = statistics.fmean(y for _, y in points)
    den = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (y - my) for t, y in points) / den if den else float("nan")


def lag_growing(samples: list[tuple[float, float]], rate: float) -> bool:
    """The sources fall behind: the lag's slope is above LAG_SLOPE_SHARE of the rate and its last
    value above LAG_SECONDS of input.

    >>> lag_growing([(0, 0), (10, 50), (20, 100)], 1000)
    False
    >>> lag_growing([(0, 0), (10, 5000), (20, 10000)], 1000)
    True
    """
    rising = slope_of(samples)
    last = samples[-1][1] if samples else float("nan")
    return rising > LAG_SLOPE_SHARE * rate and last > LAG_SECONDS * rate


def held(step: dict[str, Any]) -> bool:
    return step["p99"] <= P99_LIMIT_S and step["missing"] == 0 and not step["lag_growing"]


def state_growth(states: list[tuple[float, int, dict[str, Any]]]) -> dict[str, Any]:
    """Bytes of checkpointed state per event the job read, from the first to the last checkpoint of
    the soak's second half (compaction makes single checkpoints jumpy), in total and per operator."""
    if len(states) < 4:
        return {}
    half = [s for s in states if s[0] >= states[-1][0] / 2]
    (ta, na, a), (tb, nb, b) = half[0], half[-1]
    if nb <= na:
        return {}
    per_vertex = {
        name: (b["per_vertex"].get(name, 0) - a["per_vertex"].get(name, 0)) / (nb - na)
        for name in b["per_vertex"]
    }
    return {
        "bytes_per_event": (b["bytes"] - a["bytes"]) / (nb - na),
        "per_vertex": per_vertex,
        "span_s": tb - ta,
    }


def replay_rate(replays: list[dict[str, Any]], kind: str) -> float:
    rates = [r["sustained"] for r in replays if r["input"] == kind and r["sustained"] == r["sustained"]]
    return statistics.median(rates) if rates else float("nan")


# -- the report -------------------------------------------------------------------------------------


def plot(soaked: dict[str, Any], rate: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = soaked["t0"]
    samples = [s for s in soaked["samples"] if s["t"] >= t0]
    t = [(s["t"] - t0) / 60 for s in samples]
    fig, ax = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    mins = soaked["minutes"]
    ax[0][0].plot([m + 0.5 for m, _, _ in mins], [p99 for _, _, p99 in mins], "o-", label="p99")
    ax[0][0].plot([m + 0.5 for m, _, _ in mins], [p50 for _, p50, _ in mins], "o-", label="p50")
    ax[0][0].axhline(P99_LIMIT_S, color="red", lw=0.8, ls="--", label="1 s")
    ax[0][0].set(ylabel="click to policy, s", title="freshness per minute")
    ax[0][0].legend()
    ax[0][1].plot(t, [s["lag"] for s in samples])
    ax[0][1].set(ylabel="records", title="consumer lag (pendingRecords)")
    ax[1][0].plot(t, [s["heap_mb"] for s in samples])
    ax[1][0].set(ylabel="MB", title="JVM heap used", xlabel="minutes")
    states = soaked["states"]
    ax[1][1].plot([x / 60 for x, _, _ in states], [st["bytes"] / 2**20 for _, _, st in states], "o-")
    ax[1][1].set(ylabel="MB", title="checkpointed state", xlabel="minutes")
    fig.suptitle(f"Soak at {rate:,.0f} events/s, default settings, p = 1, learners on")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _overridden() -> str:
    extra = os.environ.get("ADLOOP_BENCH_FLINK_OVERRIDES", "")
    return (
        f"Flink settings overridden by ADLOOP_BENCH_FLINK_OVERRIDES: `{extra}`"
        if extra
        else "nothing overridden"
    )


def render(
    args: argparse.Namespace,
    steps: list[dict],
    soaked: dict | None,
    soak_rate: float,
    replays: list[dict],
    started: str,
    png: Path | None,
) -> str:
    knee = max((s["rate"] for s in steps if held(s)), default=0.0)
    every, live_kinds = replay_rate(replays, "all"), replay_rate(replays, "no auctions")
    lines = [
        "# Live capacity: the knee, a soak, and the replay rate, on the default settings",
        "",
        f"Command: `python -m bench.capacity --rates {args.rates} --step-warmup {args.step_warmup:g} "
        f"--step-seconds {args.step_seconds:g} --soak-minutes {args.soak_minutes:g} "
        f"--replay-repeats {args.replay_repeats}`",
        "",
        f"Date: {started} UTC. Machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}, {_flink_version()} on the local mini-cluster, learners on, p = 1, "
        f"{_overridden()}; Kafka, Redis, the load generator and the subscriber on the same machine; "
        f"{_code_version()}.",
        "",
        f"**Knee: {knee:,.0f} events/s.** Replay of the whole job (30 simulated days, bounded, p = 1, "
        f"median sustained rate of {args.replay_repeats} runs each): {every:,.0f} records/s over every "
        f"topic, **knee / replay {knee / every:.2f}**; {live_kinds:,.0f} records/s over the same days "
        f"without `ad.auctions` (impressions, clicks and conversions: the live load's kinds of "
        f"events), **knee / replay {knee / live_kinds:.2f}**.",
        "",
        "## Knee search (one job, the rate raised step by step)",
        "",
        f"{args.step_warmup:g} s at the rate, then {args.step_seconds:g} s of probes. Holds: p99 <= 1 s, "
        "no probe missing, lag not growing.",
        "",
        "| rate | produced | probes | missing | p50 s | p99 s | lag start | lag end | lag slope /s "
        "| job cores | bench cores | heap max MB | held |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in steps:
        lines.append(
            f"| {s['rate']:,.0f} | {s['produced']:,.0f} | {s['probes']} | {s['missing']} | {s['p50']:.3f} | "
            f"**{s['p99']:.3f}** | {s['lag_start']:,.0f} | {s['lag_end']:,.0f} | {s['lag_slope']:,.1f} | "
            f"{s['job_cores']:.2f} | {s['bench_cores']:.2f} | {s['heap_mb_max']:,.0f} | "
            f"{'yes' if held(s) else '**no**'} |"
        )
    lines += _profile_section(steps)
    lines += [
        "",
        "## Replay runs (in run order)",
        "",
        "| input | records | sustained rec/s | span rec/s | JVM CPU s |",
        "|---|---|---|---|---|",
    ]
    for r in replays:
        lines.append(
            f"| {r['input']} | {r['records']:,} | {r['sustained']:,.0f} | {r['rate']:,.0f} | "
            f"{r['cpu_s']:.1f} |"
        )
    if soaked:
        lines += _soak_section(soaked, soak_rate, args, png)
    return "\n".join(lines) + "\n"


def _profile_section(steps: list[dict]) -> list[str]:
    """Where the job's CPU went at the last step that held and the first that did not."""
    shown = [s for s in steps if held(s)][-1:] + [s for s in steps if not held(s)][:1]
    if not shown:
        return []
    lines = [
        "",
        "## Where the job's CPU goes",
        "",
        "Cores over each step's measured stretch, by JVM thread group (task threads by the operator "
        "chain they run; from /proc and jstack) and by process for the job's Python processes.",
        "",
        "| " + " | ".join(["thread group or process"] + [f"{s['rate']:,.0f}/s" for s in shown]) + " |",
        "|" + "---|" * (len(shown) + 1),
    ]
    names = sorted({k for s in shown for k in s["profile"]}, key=lambda k: -shown[0]["profile"].get(k, 0.0))
    for name in names:
        values = [s["profile"].get(name, 0.0) for s in shown]
        if max(values) >= 0.01:
            lines.append("| " + " | ".join([name] + [f"{v:.2f}" for v in values]) + " |")
    lines.append("| **total** | " + " | ".join(f"**{sum(s['profile'].values()):.2f}**" for s in shown) + " |")
    return lines


def _soak_section(soaked: dict, rate: float, args: argparse.Namespace, png: Path | None) -> list[str]:
    t0 = soaked["t0"]
    samples = [s for s in soaked["samples"] if s["t"] >= t0]
    worst = max((p99 for _, _, p99 in soaked["minutes"]), default=float("nan"))
    third = max(1, len(samples) // 3)
    heap_first = min(s["heap_mb"] for s in samples[:third])
    heap_last = min(s["heap_mb"] for s in samples[-third:])
    growth = state_growth(soaked["states"])
    lines = [
        "",
        f"## Soak: {args.soak_minutes:g} minutes at {rate:,.0f} events/s (80% of the knee)",
        "",
        f"Produced {soaked['produced']:,.0f} events/s; {soaked['probes']} probes, "
        f"{soaked['missing']} missing; "
        f"p50 {soaked['p50']:.3f} s, p99 {soaked['p99']:.3f} s over the whole soak; **worst minute's p99 "
        f"{worst:.3f} s**. Consumer lag {soaked['lag_start']:,.0f} at the start, {soaked['lag_end']:,.0f} "
        f"at the end, at most {soaked['lag_max']:,.0f}; slope {soaked['lag_slope']:,.2f} records/s "
        f"({'growing' if soaked['lag_growing'] else 'not growing'}). Job CPU {soaked['job_cores']:.2f} "
        f"cores, bench (load generator, subscriber) {soaked['bench_cores']:.2f} cores. Heap used, lowest "
        f"sample of the first third {heap_first:,.0f} MB, of the last third {heap_last:,.0f} MB; highest "
        f"{soaked['heap_mb_max']:,.0f} MB.",
        "",
    ]
    if png:
        lines += [f"![soak]({png.name})", ""]
    lines += [
        "Verdicts: "
        + "; ".join(
            [
                f"p99 <= 1 s in every minute: **{'yes' if worst <= P99_LIMIT_S else 'no'}**",
                f"consumer lag not growing: **{'yes' if not soaked['lag_growing'] else 'no'}**",
                f"heap bounded (lowest sample of the last third within 25% of the first third's): "
                f"**{'yes' if heap_last <= 1.25 * heap_first else 'no'}**",
            ]
        )
        + ".",
        "",
        "Per minute, by when the probe was sent; a probe never seen counts as its age at the end.",
        "",
        "| minute | p50 s | p99 s |",
        "|---|---|---|",
    ]
    lines += [f"| {m} | {p50:.3f} | {p99:.3f} |" for m, p50, p99 in soaked["minutes"]]
    if growth:
        lines += [
            "",
            f"State growth over the soak's second half ({growth['span_s']:.0f} s between checkpoints): "
            f"**{growth['bytes_per_event']:,.0f} bytes of checkpointed state per event read**. Per "
            "operator (bytes per event):",
            "",
            "| operator | bytes per event |",
            "|---|---|",
        ]
        for name, b in sorted(growth["per_vertex"].items(), key=lambda kv: -kv[1]):
            if abs(b) >= 1:
                lines.append(f"| {name} | {b:,.1f} |")
    lines += ["", "Checkpoints (s from the soak's start, events read, state MB):", ""]
    lines += [f"- {t:.0f} s, {n:,}, {st['bytes'] / 2**20:,.1f} MB" for t, n, st in soaked["states"]]
    return lines
