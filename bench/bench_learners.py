"""Benchmark of the learners against River alone doing the same updates.

For each learner:
- update throughput: aggregates/s, where one aggregate is one ``(state, arm)`` row of a micro-batch
  that summarises ``E`` events; River has no aggregate input, so it absorbs the same ``E`` events
  one ``update`` call at a time. Reported for ``E = 1`` (same number of update calls on both sides)
  and ``E = 100`` (what a micro-batch looks like under load), each with the ratio ours / River.
- ``choose()`` latency p50 / p99 (steady state, cached plan) against River's ``pull`` on the same
  arms, and the one-off cost of the first ``choose`` after an update (propensity quadrature,
  matrix inversion or re-planning, cached per version).
- params size: compact JSON bytes, and bytes per arm for the non-contextual learners.

Each figure is the median of ``--runs`` runs. Usage::

    python -m bench.bench_learners [--runs 5] [--out bench/results/learners.md]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from river import bandit, proba, stats

from learners import UCB, BidAgent, BudgetPacer, EpsilonGreedy, Exp3, Learner, LinUCB, ThompsonSampling
from learners.batch import ArmStats, Batch

N_ARMS = 10
ARMS = [f"c00-cr{i}" for i in range(N_ARMS)]
FEATURES = [f"f{i}" for i in range(8)]
MULTIPLIERS = ["0.5", "0.75", "1", "1.25", "1.5"]
RATES = ["0", "0.25", "0.5", "0.75", "1"]
SEGMENTS = ["seg0", "seg1", "seg2", "seg3"]
D = len(FEATURES)


@dataclass
class Spec:
    name: str
    ours: Callable[[], Learner]
    river: Callable[[], Any]  # a River object, or a dict of River stats for the RL agents
    river_update: Callable[[Any, random.Random, Any, float, dict[str, float]], None]
    river_choose: Callable[[Any, dict[str, Any] | None, list[Any]], Any]
    row: Callable[[random.Random, Any, int], ArmStats]  # an aggregate of E events
    event: Callable[[random.Random], tuple[Any, float, dict[str, float]]]  # (arm, reward, context)
    context: Callable[[random.Random], dict[str, Any] | None]
    arms: list[Any]
    note: str = ""


def _bandit_row(rng: random.Random, arm: Any, e: int) -> ArmStats:
    clicks = sum(rng.random() < 0.05 for _ in range(e))
    return ArmStats(
        arm=arm, trials=e, reward_sum=clicks, reward_sq_sum=clicks, ipw_reward_sum=clicks * N_ARMS
    )


def _bandit_event(rng: random.Random) -> tuple[Any, float, dict[str, float]]:
    return rng.choice(ARMS), float(rng.random() < 0.05), {}


def _linear_row(rng: random.Random, arm: Any, e: int) -> ArmStats:
    xx = [0.0] * (D * D)
    rx = [0.0] * D
    s = 0.0
    for _ in range(e):
        x = [rng.gauss(0, 1) for _ in range(D)]
        r = float(rng.random() < 0.05)
        s += r
        for i in range(D):
            rx[i] += r * x[i]
            for j in range(D):
                xx[i * D + j] += x[i] * x[j]
    return ArmStats(arm=arm, trials=e, reward_sum=s, reward_sq_sum=s, xx=tuple(xx), rx=tuple(rx))


def _linear_event(rng: random.Random) -> tuple[Any, float, dict[str, float]]:
    return rng.choice(ARMS), float(rng.random() < 0.05), {f: rng.gauss(0, 1) for f in FEATURES}


def _linear_context(rng: random.Random) -> dict[str, Any]:
    return {f: rng.gauss(0, 1) for f in FEATURES}


def _bid_row(rng: random.Random, arm: Any, e: int) -> ArmStats:
    m = float(arm)
    state = f"{rng.randrange(24)}|{rng.choice(SEGMENTS)}"
    return ArmStats(arm=arm, state=state, trials=e, reward_sum=e * 0.03 * m, cost_sum=e * 0.1 * m)


def _bid_event(rng: random.Random) -> tuple[Any, float, dict[str, float]]:
    return (rng.randrange(24), rng.choice(SEGMENTS), rng.choice(MULTIPLIERS)), float(rng.random() < 0.03), {}


def _bid_context(rng: random.Random) -> dict[str, Any]:
    return {
        "time_block": rng.randrange(24),
        "segment": rng.choice(SEGMENTS),
        "remaining_budget": rng.uniform(0, 100),
    }


def _pacer_row(rng: random.Random, arm: Any, e: int) -> ArmStats:
    return ArmStats(arm=arm, state=str(rng.randrange(24)), trials=e, cost_sum=e * 0.1 * float(arm))


def _pacer_event(rng: random.Random) -> tuple[Any, float, dict[str, float]]:
    return (rng.randrange(24), rng.choice(RATES)), 0.0, {}


def _pacer_context(rng: random.Random) -> dict[str, Any]:
    return {"time_block": rng.randrange(24), "remaining_budget": rng.uniform(0, 100)}


def _river_bandit_update(
    policy: Any, rng: random.Random, arm: Any, reward: float, ctx: dict[str, float]
) -> None:
    policy.update(arm, reward)


def _river_lin_update(
    policy: Any, rng: random.Random, arm: Any, reward: float, ctx: dict[str, float]
) -> None:
    policy.update(arm, ctx, reward)


def _river_cells() -> dict[Any, Any]:
    return {}


def _river_cell_update(cells: dict[Any, Any], rng: random.Random, key: Any, reward: float, ctx: Any) -> None:
    # What a River-only tabular agent would do per event: running means of value and cost per cell.
    cell = cells.get(key)
    if cell is None:
        cell = cells[key] = (stats.Mean(), stats.Mean())
    cell[0].update(reward)
    cell[1].update(0.1)


def _river_cell_choose(cells: dict[Any, Any], ctx: dict[str, Any] | None, arms: list[Any]) -> Any:
    assert ctx is not None
    key = (ctx["time_block"], ctx.get("segment"))
    return max(arms, key=lambda a: cells[(*key, a)][0].get() if (*key, a) in cells else 0.0)


def _exp3() -> Any:
    policy = bandit.Exp3(gamma=0.1, seed=1)
    policy.pull(ARMS)  # River's Exp3 divides by the probabilities of the last pull
    return policy


SPECS = [
    Spec("ThompsonSampling(beta)", lambda: ThompsonSampling(seed=1),
         lambda: bandit.ThompsonSampling(reward_obj=proba.Beta(), seed=1), _river_bandit_update,
         lambda p, c, a: p.pull(a), _bandit_row, _bandit_event, lambda r: None, ARMS),
    Spec("ThompsonSampling(gaussian)", lambda: ThompsonSampling("gaussian", prior_var=0.05, seed=1),
         lambda: bandit.ThompsonSampling(reward_obj=proba.Gaussian(), seed=1), _river_bandit_update,
         lambda p, c, a: p.pull(a), _bandit_row, _bandit_event, lambda r: None, ARMS),
    Spec("UCB", lambda: UCB(seed=1), lambda: bandit.UCB(delta=1.0, seed=1), _river_bandit_update,
         lambda p, c, a: p.pull(a), _bandit_row, _bandit_event, lambda r: None, ARMS),
    Spec("EpsilonGreedy", lambda: EpsilonGreedy(0.1, seed=1), lambda: bandit.EpsilonGreedy(0.1, seed=1),
         _river_bandit_update, lambda p, c, a: p.pull(a), _bandit_row, _bandit_event, lambda r: None, ARMS),
    Spec("Exp3", lambda: Exp3(0.1, seed=1), _exp3, _river_bandit_update, lambda p, c, a: p.pull(a),
         _bandit_row, _bandit_event, lambda r: None, ARMS),
    Spec("LinUCB(d=8)", lambda: LinUCB(FEATURES, seed=1), lambda: bandit.LinUCBDisjoint(alpha=1.0, seed=1),
         _river_lin_update, lambda p, c, a: p.pull(a, c), _linear_row, _linear_event, _linear_context, ARMS),
    Spec("BidAgent", lambda: BidAgent(MULTIPLIERS, 100.0, max_bid=2.0, seed=1), _river_cells,
         _river_cell_update, _river_cell_choose, _bid_row, _bid_event, _bid_context, MULTIPLIERS,
         "River reference: stats.Mean per (block, segment, multiplier) cell, greedy lookup"),
    Spec("BudgetPacer", lambda: BudgetPacer(100.0, seed=1), _river_cells, _river_cell_update,
         _river_cell_choose, _pacer_row, _pacer_event, _pacer_context, RATES,
         "River reference: stats.Mean per (block, rate) cell, greedy lookup"),
]  # fmt: skip


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _update_rate(spec: Spec, e: int, n_rows: int) -> tuple[float, float]:
    """(ours aggregates/s, River aggregates/s) absorbing ``n_rows`` aggregates of ``e`` events."""
    rng = random.Random(0)
    arms = spec.arms
    batches = []
    for i in range(0, n_rows, len(arms)):
        rows = tuple(spec.row(rng, arm, e) for arm in arms)
        batches.append(Batch(rows, window_end=i))
    learner = spec.ours()
    t0 = time.perf_counter()
    for b in batches:
        learner.update(b)
    ours = sum(len(b) for b in batches) / (time.perf_counter() - t0)

    events = [spec.event(rng) for _ in range(min(n_rows * e, 200_000))]
    river = spec.river()
    t0 = time.perf_counter()
    for arm, reward, ctx in events:
        spec.river_update(river, rng, arm, reward, ctx)
    river_events_per_s = len(events) / (time.perf_counter() - t0)
    return ours, river_events_per_s / e


def _choose_latency(spec: Spec, n_calls: int) -> tuple[float, float, float, float, float]:
    """(ours p50 us, ours p99 us, River p50 us, River p99 us, ours first call after update ms)."""
    rng = random.Random(1)
    learner = spec.ours()
    river = spec.river()
    for i in range(20):
        learner.update(Batch(tuple(spec.row(rng, arm, 50) for arm in spec.arms), window_end=i))
    for _ in range(2000):
        arm, reward, ctx = spec.event(rng)
        spec.river_update(river, rng, arm, reward, ctx)
    contexts = [spec.context(rng) for _ in range(n_calls)]
    arms = spec.arms
    t0 = time.perf_counter()
    learner.choose(contexts[0], arms)
    first_ms = (time.perf_counter() - t0) * 1e3
    ours, theirs = [], []
    for ctx in contexts:
        t0 = time.perf_counter_ns()
        learner.choose(ctx, arms)
        ours.append((time.perf_counter_ns() - t0) / 1e3)
    for ctx in contexts:
        t0 = time.perf_counter_ns()
        spec.river_choose(river, ctx, arms)
        theirs.append((time.perf_counter_ns() - t0) / 1e3)
    ours_p = (_percentile(ours, 0.5), _percentile(ours, 0.99))
    return (*ours_p, _percentile(theirs, 0.5), _percentile(theirs, 0.99), first_ms)


def _params_size(spec: Spec) -> tuple[int, float, float]:
    """(params bytes after a day of traffic, bytes per arm integral counts, bytes per arm discounted)."""
    rng = random.Random(2)
    learner = spec.ours()
    for i in range(24):
        learner.update(Batch(tuple(spec.row(rng, arm, 200) for arm in spec.arms), window_end=i * 3_600_000))
    size = len(json.dumps(learner.to_params(), separators=(",", ":")))
    if spec.name.startswith(("LinUCB", "BidAgent", "BudgetPacer")):
        return size, float("nan"), float("nan")
    per_arm = []
    for half_life in (None, 7_200_000.0):
        base = spec.ours()
        one = type(base)._from_config({**base._config(), "half_life_ms": half_life}, 1)
        empty = len(json.dumps(one.to_params(), separators=(",", ":")))
        for i in range(24):
            one.update(
                Batch(tuple(_bandit_row(rng, arm, 200) for arm in spec.arms), window_end=i * 3_600_000)
            )
        full = len(json.dumps(one.to_params(), separators=(",", ":")))
        per_arm.append((full - empty) / len(spec.arms))
    return size, per_arm[0], per_arm[1]


def regret_curve(out: Path, *, impressions: int = 6000, batch: int = 100) -> str:
    """Thompson-sampling creative agent on the simulated market: cumulative regret and CTR / oracle.

    Uses the environment loop of the learner tests (``tests/unit/learners/sim_env.py``), on
    ``sim.market`` ground truth: 40 (campaign, segment) keys, micro-batches of ``batch``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from tests.unit.learners.sim_env import creative_experiment, market

    run = creative_experiment(market(7), impressions=impressions, batch=batch)
    cum = np.cumsum(run.regret)
    t = np.arange(1, len(cum) + 1)
    window = 200
    ratio = np.convolve(run.ctr_shown, np.ones(window), "valid") / np.convolve(
        run.oracle, np.ones(window), "valid"
    )
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(t, cum, label="Thompson sampling")
    ax1.plot(
        t,
        cum[len(cum) // 10 - 1] * t / (len(cum) // 10),
        "--",
        color="grey",
        label="linear, at the 10% slope",
    )
    ax1.set_ylim(0, cum[-1] * 1.6)
    ax1.set(xlabel="impressions per (campaign, segment)", ylabel="cumulative regret (clicks, 40 keys)")
    ax1.legend()
    ax2.plot(np.arange(window, len(run.regret) + 1), ratio)
    ax2.axhline(0.95, color="red", linestyle="--", label="95% of oracle")
    ax2.set(
        xlabel="impressions per (campaign, segment)", ylabel=f"CTR / oracle CTR ({window}-impression window)"
    )
    ax2.legend()
    fig.suptitle("Creative agent on the simulated market (seed 7, micro-batches of 100)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    half = len(run.regret) // 2
    late = run.ctr_shown[half:].sum() / run.oracle[half:].sum()
    return (
        f"Creative agent (Thompson sampling, {impressions} impressions x 40 keys): CTR/oracle "
        f"{run.ctr_shown.sum() / run.oracle.sum():.3f} overall, {late:.3f} "
        f"over the second half; regret first half {run.regret[:half].sum():.1f}, second half "
        f"{run.regret[half:].sum():.1f} clicks. Curve: {out}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=2000, help="aggregates per update measurement")
    parser.add_argument("--calls", type=int, default=5000, help="choose() calls per latency measurement")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "learners.md")
    parser.add_argument(
        "--curve",
        type=Path,
        default=Path("reports") / "creative_regret.png",
        help="where to write the creative agent's regret curve (PNG); 'none' to skip",
    )
    args = parser.parse_args(argv)
    curve_line = "" if str(args.curve) == "none" else regret_curve(args.curve)
    if curve_line:
        print(curve_line, flush=True)

    header = (
        "| learner | upd agg/s E=1 | River agg/s E=1 | ratio | upd agg/s E=100 | River agg/s E=100 | ratio "
        "| choose p50 µs | p99 µs | River p50 µs | River p99 µs | first choose after update ms "
        "| params B | B/arm | B/arm discounted |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for spec in SPECS:
        r1 = [_update_rate(spec, 1, args.rows) for _ in range(args.runs)]
        rows_100 = args.rows if not spec.name.startswith("LinUCB") else args.rows // 4
        r100 = [_update_rate(spec, 100, rows_100) for _ in range(args.runs)]
        lat = [_choose_latency(spec, args.calls) for _ in range(args.runs)]
        size, per_arm, per_arm_disc = _params_size(spec)
        med = statistics.median
        o1, t1 = med(r[0] for r in r1), med(r[1] for r in r1)
        o100, t100 = med(r[0] for r in r100), med(r[1] for r in r100)
        p50, p99, rp50, rp99, first = (med(x[i] for x in lat) for i in range(5))

        def fmt(v: float) -> str:
            return "–" if v != v else f"{v:,.0f}"

        lines.append(
            f"| {spec.name} | {o1:,.0f} | {t1:,.0f} | {o1 / t1:.2f} "
            f"| {o100:,.0f} | {t100:,.0f} | {o100 / t100:.0f} "
            f"| {p50:.1f} | {p99:.1f} | {rp50:.1f} | {rp99:.1f} | {first:.2f} | {size:,} | {fmt(per_arm)} "
            f"| {fmt(per_arm_disc)} |"
        )
        print(lines[-1], flush=True)
    notes = [
        "",
        f"Median of {args.runs} runs; {N_ARMS} arms (creatives `c00-cr0`..), LinUCB d={D}, "
        f"bid agent 24 blocks x {len(SEGMENTS)} segments x {len(MULTIPLIERS)} multipliers, "
        f"pacer 24 blocks x {len(RATES)} rates.",
        "An aggregate is one (state, arm) row summarising E events; River absorbs the same E events with one "
        "update call each (it has no aggregate input), so its aggregates/s is its events/s divided by E.",
        "choose: steady state on a cached plan; 'first choose after update' is the one-off cost per version "
        "(Thompson quadrature for the exact propensities, LinUCB inversions, bid-agent re-planning).",
        "params: compact JSON after 24 hourly updates; B/arm = (bytes with 10 arms - bytes with none) / 10, "
        "with integral counts (no half-life) and with discounted floats kept to nine significant digits "
        "(2 h half-life).",
        *(f"{s.name}: {s.note}" for s in SPECS if s.note),
        f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}.",
        *([curve_line] if curve_line else []),
    ]
    text = (
        "# Learner benchmark\n\nCommand: `python -m bench.bench_learners`\n\n"
        + "\n".join(lines + notes)
        + "\n"
    )
    print("\n".join(notes))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
