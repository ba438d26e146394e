"""Rollout decisions over simulated traffic, many seeds: how fast a bad candidate is rolled back and
how much traffic it saw, how fast a good one is promoted, how often an A/A candidate is promoted
or rolled back, and how close the shadow's off-policy estimate comes to the candidate's live CTR.

    python -m bench.rollout_trials [--seeds 40] [--aa-seeds 200] [--requests-per-hour 2000]

The market is the simulator's (``sim.market``: CTR per campaign, segment and creative). Per
campaign the control serves the best creative of the user's segment with probability 0.8 and a
uniform creative otherwise; the bad candidate always serves the campaign's worst creative; the good
one always the best of the segment; the A/A candidate is the control itself. The candidate serves
``--share`` of the requests; the shadow (on) logs the candidate's choice on the control's. Every
simulated minute is a micro-batch and the test looks after each one (continuous monitoring). The
baseline, in the same run: a fixed-n one-sided z-test at the same alpha looked at as often.

The decisions are ``rollout.sequential.RolloutTest``'s and the shadow estimates
``rollout.controller.ShadowTotals``'', the code the rollout controller runs; the traffic, not the
job, is simulated here.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rollout.controller import ShadowTotals
from rollout.sequential import RolloutSettings, RolloutTest, confidence_sequence
from sim.config import SimConfig
from sim.market import Market

RESULTS = Path(__file__).resolve().parent / "results"
EXPLORE = 0.2  # the control's uniform share


@dataclass(frozen=True)
class Trial:
    decision: str  # promote, rollback, extend (none within the horizon)
    minutes: int
    requests: int
    candidate_requests: int
    naive_promoted: bool
    naive_rolled_back: bool
    snips: float | None
    live_ctr: float


def _ctr(market: Market, campaign: str, segments: list[str]) -> np.ndarray:
    """True CTR, [segment, creative]."""
    creatives = market.campaign(campaign).creatives
    return np.array([[market.true_ctr(campaign, s, c) for c in creatives] for s in segments])


def _policies(market: Market, campaign: str, segments: list[str], kind: str) -> tuple[np.ndarray, ...]:
    """(control, candidate): the probability of each creative per segment, [segment, creative]."""
    ctr = _ctr(market, campaign, segments)
    k = ctr.shape[1]
    best = np.eye(k)[ctr.argmax(axis=1)]
    control = (1 - EXPLORE) * best + EXPLORE / k
    if kind == "bad":
        worst = ctr.mean(axis=0).argmin()
        candidate = np.tile(np.eye(k)[worst], (len(segments), 1))
    elif kind == "good":
        candidate = best
    else:
        candidate = control.copy()
    return control, candidate


def run_trial(seed: int, kind: str, args) -> Trial:
    rng = np.random.default_rng(seed)
    market = Market(SimConfig(seed=seed, days=1))
    campaign = market.campaigns[0].campaign_id
    segments = list(market.segments)
    ctr = _ctr(market, campaign, segments)
    control, candidate = _policies(market, campaign, segments, "good" if kind == "shadow" else kind)
    k = ctr.shape[1]
    settings = RolloutSettings(alpha=args.alpha, margin=args.margin)
    test, shadow = RolloutTest(settings), ShadowTotals()
    naive_up = naive_down = False
    requests = cand_requests = 0
    cand_clicks = 0.0
    z = _z(args.alpha)
    horizon = args.shadow_hours if kind == "shadow" else args.horizon_hours
    decision = test.look()
    minute = 0
    for minute in range(1, horizon * 60 + 1):  # noqa: B007 - read after the loop
        n = rng.poisson(args.requests_per_hour / 60)
        seg = rng.integers(len(segments), size=n)
        to_candidate = rng.random(n) < args.share
        requests += n
        for arm, policy, mask in (
            ("control", control, ~to_candidate),
            ("candidate", candidate, to_candidate),
        ):
            s = seg[mask]
            if s.size == 0:
                continue
            probs = policy[s]
            action = (probs.cumsum(axis=1) > rng.random((s.size, 1))).argmax(axis=1)
            clicks = (rng.random(s.size) < ctr[s, action]).astype(float)
            totals = test.control if arm == "control" else test.candidate
            totals.add(s.size, clicks.sum(), clicks.sum(), clicks.sum())
            if arm == "candidate":
                cand_requests += s.size
                cand_clicks += clicks.sum()
            else:
                shadow_action = (candidate[s].cumsum(axis=1) > rng.random((s.size, 1))).argmax(axis=1)
                propensity = probs[np.arange(s.size), action]
                for a in range(k):
                    for b in range(k):
                        m = (action == a) & (shadow_action == b)
                        if m.any():
                            inv = (1 / propensity[m]).sum() if a == b else 0.0
                            rinv = (clicks[m] / propensity[m]).sum() if a == b else 0.0
                            shadow.add(str(a), str(b), float(m.sum()), float(clicks[m].sum()), inv, rinv)
        kt, ct = test.control, test.candidate
        if min(kt.n, ct.n) >= settings.min_decisions:
            se = math.sqrt(kt.variance / kt.n + ct.variance / ct.n) or math.inf
            naive_up |= (ct.mean - kt.mean) / se > z
            naive_down |= (ct.mean - (1 - settings.margin) * kt.mean) / se < -z
        if kind == "shadow":
            continue  # the shadow's estimate against the candidate's live CTR over the whole run
        decision = test.look()
        if decision.action != "extend":
            break
    snips, _ = shadow.estimates()
    live = cand_clicks / cand_requests if cand_requests else math.nan
    return Trial(decision.action, minute, requests, cand_requests, naive_up, naive_down, snips, live)


def _z(alpha: float) -> float:
    return statistics.NormalDist().inv_cdf(1 - alpha)


def exposure_bound(mu_control: float, mu_candidate: float, share: float, settings: RolloutSettings) -> float:
    """Candidate decisions by which a candidate worse than the margin is rolled back, with
    probability at least 1 - alpha: the confidence sequence covers the true shifted difference
    ``-gap`` at all times with that probability, so its upper end is at most ``-gap + 2 radius``,
    below 0 once ``2 radius < gap``. Solved for the candidate's decisions ``n`` (the control has
    ``n (1 - s) / s``), the variances at their true values, ``tau2`` at the minimums as the test
    fixes it."""
    gap = (1 - settings.margin) * mu_control - mu_candidate
    if gap <= 0:
        return math.inf
    m = settings.margin

    def variance(n: float) -> float:
        n_control = n * (1 - share) / share
        return (
            mu_candidate * (1 - mu_candidate) / n + (1 - m) ** 2 * mu_control * (1 - mu_control) / n_control
        )

    def radius(n: float) -> float:
        low, high = confidence_sequence(0.0, variance(n), tau2, settings.alpha)
        return high

    n0 = max(settings.min_decisions, settings.min_successes / max(mu_candidate, 1e-9))
    tau2 = variance(n0)
    if 2 * radius(n0) < gap:
        return n0
    lo, hi = n0, 1e12
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if 2 * radius(mid) < gap else (mid, hi)
    return hi


def _plot(results: dict[str, list[Trial]], bounds: list[float], args, path: Path) -> None:
    """The bad candidate's exposure against its bound, per seed; decisions of each candidate kind
    by the sequential test and by the fixed-n baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    bad = results["bad"]
    seeds = range(1, len(bad) + 1)
    left.bar(
        seeds, [t.candidate_requests for t in bad], color="tab:red", label="exposed requests until rollback"
    )
    left.plot(
        seeds, bounds, "k_", markersize=12, label=f"bound (rolled back by then w.p. >= {1 - args.alpha:.0%})"
    )
    left.set_xlabel("seed")
    left.set_ylabel("candidate requests")
    left.set_title(f"Bad candidate at {args.share:.0%}: exposure before the rollback")
    left.legend()
    kinds = ["bad", "good", "aa"]
    wanted = {"bad": "rollback", "good": "promote", "aa": "promote"}
    sequential = [sum(t.decision == wanted[k] for t in results[k]) / len(results[k]) for k in kinds]
    naive = [
        sum((t.naive_rolled_back if k == "bad" else t.naive_promoted) for t in results[k]) / len(results[k])
        for k in kinds
    ]
    x = np.arange(len(kinds))
    right.bar(x - 0.2, sequential, 0.4, label="confidence sequence (this test)")
    right.bar(x + 0.2, naive, 0.4, label="fixed-n z-test, looked at as often")
    right.axhline(args.alpha, color="k", linestyle=":", label=f"alpha = {args.alpha}")
    right.set_xticks(x, ["bad: rolled back", "good: promoted", "A/A: promoted (false)"])
    right.set_ylabel("share of seeds")
    right.set_title(f"Decisions within {args.horizon_hours} simulated h")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rollout_trials", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--seeds", type=int, default=40, help="seeds of the bad and the good candidate")
    parser.add_argument("--aa-seeds", type=int, default=200, help="seeds of the A/A candidate")
    parser.add_argument("--requests-per-hour", type=float, default=2_000, help="a campaign's requests")
    parser.add_argument("--share", type=float, default=0.1)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--margin", type=float, default=0.05)
    parser.add_argument("--horizon-hours", type=int, default=3 * 24, help="a rollout's longest run")
    parser.add_argument("--shadow-hours", type=int, default=72, help="the shadow trials' length")
    parser.add_argument("--out", default=str(RESULTS / "rollout_trials.md"))
    args = parser.parse_args(argv)
    settings = RolloutSettings(alpha=args.alpha, margin=args.margin)
    lines = [
        "# Rollout decisions over simulated traffic",
        "",
        f"`python -m bench.rollout_trials --seeds {args.seeds} --aa-seeds {args.aa_seeds} "
        f"--requests-per-hour {args.requests_per_hour:g} --share {args.share} --alpha {args.alpha} "
        f"--margin {args.margin}`",
        "",
        f"A campaign's {args.requests_per_hour:g} requests/hour, the candidate at {args.share:.0%}, alpha "
        f"{args.alpha}, rollback margin {args.margin:.0%}, looked at every simulated minute, for at most "
        f"{args.horizon_hours} h.",
        "",
    ]
    titles = {
        "bad": "Bad candidate (the worst creative)",
        "good": "Good candidate (the best creative of each segment)",
        "aa": "A/A candidate (the control itself)",
        "shadow": f"Shadow estimate of the good candidate over {args.shadow_hours} h (no decisions)",
    }
    results: dict[str, list[Trial]] = {}
    bounds: list[float] = []
    for kind, seeds in (
        ("bad", args.seeds),
        ("good", args.seeds),
        ("aa", args.aa_seeds),
        ("shadow", args.seeds),
    ):
        trials = results.setdefault(kind, [])
        for i, seed in enumerate(range(1, seeds + 1)):
            trials.append(run_trial(seed, kind, args))
            if (i + 1) % 10 == 0:
                print(f"rollout_trials: {kind} {i + 1}/{seeds}", file=sys.stderr, flush=True)
        lines += [f"## {titles[kind]}", ""]
        if kind == "shadow":
            errors = [abs(t.snips - t.live_ctr) / t.live_ctr for t in trials if t.snips and t.live_ctr > 0]
            lines.append(
                f"- shadow SNIPS estimate of the candidate's CTR (from the control's requests) against "
                f"its live CTR (its own {args.share:.0%}): median error {statistics.median(errors):.1%}, "
                f"within 10% in {sum(e <= 0.1 for e in errors)}/{len(errors)} seeds"
            )
            lines.append("")
            continue
        decided = [t for t in trials if t.decision != "extend"]
        counts = {d: sum(t.decision == d for t in trials) for d in ("promote", "rollback", "extend")}
        naive = sum(t.naive_promoted if kind != "bad" else t.naive_rolled_back for t in trials)
        lines.append(f"- decisions over {seeds} seeds: {counts}")
        if decided:
            hours = [t.minutes / 60 for t in decided]
            lines.append(
                f"- time to decide: median {statistics.median(hours):.2f} simulated h "
                f"(max {max(hours):.2f}); requests meanwhile: "
                f"median {statistics.median(t.requests for t in decided):.0f}"
            )
            exposed = [t.candidate_requests for t in decided]
            lines.append(
                f"- the candidate's requests: median {statistics.median(exposed):.0f}, max {max(exposed)}"
            )
        if kind == "bad":
            for seed in range(1, seeds + 1):
                market = Market(SimConfig(seed=seed, days=1))
                campaign = market.campaigns[0].campaign_id
                segs = list(market.segments)
                ctr = _ctr(market, campaign, segs)
                control, candidate = _policies(market, campaign, segs, "bad")
                mu_k = float((control * ctr).sum(axis=1).mean())
                mu_c = float((candidate * ctr).sum(axis=1).mean())
                bounds.append(exposure_bound(mu_k, mu_c, args.share, settings))
            within = sum(t.candidate_requests <= b for t, b in zip(trials, bounds, strict=True))
            lines.append(
                f"- exposure bound (`exposure_bound`: rolled back by then with probability "
                f">= {1 - args.alpha:.0%}): median {statistics.median(bounds):.0f} candidate requests; "
                "the exposure was within it in "
                f"{within}/{seeds} seeds"
            )
            lines.append(f"- baseline, a fixed-n z-test looked at as often: rolled back in {naive}/{seeds}")
        else:
            lines.append(f"- baseline, a fixed-n z-test looked at as often: promoted in {naive}/{seeds}")
        lines.append("")
        print("\n".join(lines[-7:]), flush=True)
    plot = Path(args.out).with_suffix(".png")
    _plot(results, bounds, args, plot)
    lines.append(f"![rollout trials]({plot.name})")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"rollout_trials: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
