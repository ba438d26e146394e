"""The closed-loop demo: simulated serving nodes choose from the live Redis policies, the feedback
job learns from their logged decisions on the local mini-cluster, and the loop closes.

    python -m scripts.demo [--days 6] [--seed 7] [--report-dir reports]

Starts its own Kafka and Redis (loopback, free ports, stopped at the end) and the feedback job
(unbounded, learners on). Then, simulated hour by simulated hour: the simulator serves the hour's
auctions through the serving-node client (creative and bid multiplier from the published policies,
uniform while there are none), writes the hour to Kafka, and waits until the job has turned the
hour's closed click windows into rewards and fresh policies. Prints progress per simulated day and
writes a text report and a PNG plot under ``--report-dir``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import learners
from config import app as app_config
from contract import events
from scripts import kafka_tools
from scripts import services as svc
from sim.config import SimConfig
from sim.market import Market
from sim.noise import SimRecord
from sim.policies import BUDGET, CREATIVE, FixedPolicy
from sim.redis_policy import RedisServingPolicy
from sim.simulator import Simulator
from sim.writers import KafkaWriter
from state.policy_store import RedisPolicyStore
from state.serving_client import ServingClient

ROOT = Path(__file__).resolve().parent.parent
AGENTS = ("creative", "bid", "budget", "segment")
# The job's watermark trails the newest event by ingest.out_of_orderness_ms; allow this much more
# before counting an impression's click window as closed.
WATERMARK_SLACK_MS = 10 * 60_000


def _say(text: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {text}", flush=True)


# -- market truth ---------------------------------------------------------------------------------


def segment_traffic(market: Market, draws: int = 200_000, seed: int = 0) -> np.ndarray:
    """Share of auction requests per segment, from the market's own user sampler (±0.3% at 200k)."""
    users = market.sample_users(np.random.default_rng(seed), draws)
    counts = np.bincount(market.user_segment[users], minlength=len(market.segments))
    return counts / counts.sum()


def campaign_ctrs(market: Market, traffic: np.ndarray) -> dict[str, dict[str, float]]:
    """Traffic-weighted true CTR of every creative of every campaign (over the campaign's segments).

    The learners are keyed by campaign, not segment, so this is what they can learn: the best
    creative of a campaign is the argmax of these, not the best of any one segment.
    """
    return {
        c.campaign_id: {cr: float(traffic @ market.ctr[c.index, :, j]) for j, cr in enumerate(c.creatives)}
        for c in market.campaigns
    }


def best_by_campaign(ctrs: dict[str, dict[str, float]]) -> dict[str, str]:
    return {campaign: max(by_creative, key=by_creative.__getitem__) for campaign, by_creative in ctrs.items()}


# -- one simulated hour ---------------------------------------------------------------------------


@dataclass
class HourStats:
    """What one simulated hour did; CTRs are expected (true) CTRs of the impressions served."""

    hour: int
    records: int
    impressions: int
    clicks: int
    ctr: float  # mean true CTR of the creatives served
    oracle_ctr: float  # ... had each campaign served its best creative (per campaign, as learnable)
    segment_oracle_ctr: float  # ... had each (campaign, segment) served its best (a contextual bound)
    uniform_ctr: float  # ... had the creative been drawn uniformly
    from_policy: float  # share of creative decisions made by a published policy (not the default)
    versions: int  # policy versions installed in the client so far
    spend: dict[str, float] = field(default_factory=dict)  # by campaign, this hour
    wait_s: float = 0.0  # time spent waiting for the job to catch up
    requests: int = 0  # bid requests logged on ad.auctions
    entered: int = 0  # ... the budget agent let into the auction
    pacing_rate: float = float("nan")  # mean pacing rate served
    bid_multiplier: float = float("nan")  # mean bid multiplier of the requests entered


@dataclass
class ClosedLoop:
    """Drives the simulator hour by hour against the running feedback job.

    ``step`` serves and writes one hour, then paces: it waits until the rewards topic holds the
    initial rewards of every impression whose click window the job's watermark has passed, and
    then until the client installs the policies those rewards produce (each wait bounded).
    """

    sim: Simulator
    writer: KafkaWriter
    client: ServingClient
    bootstrap: str
    rewards_topic: str
    click_window_ms: int
    out_of_orderness_ms: int
    reward_timeout_s: float = 20.0
    quiet_s: float = 2.0
    publish_timeout_s: float = 3.0
    time_blocks: int = 24
    segments: int | None = None  # the segment agent's segments; None: serve the simulator's labels
    policy: RedisServingPolicy = field(init=False)
    hours: list[HourStats] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)
    _closing: list[tuple[int, int]] = field(default_factory=list)  # (impression ts, decisions)
    _expected: int = 0  # initial reward rows the job must have written by now
    _oracle: dict[str, str] = field(default_factory=dict)
    _sources: Counter[tuple[str, str]] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.policy = RedisServingPolicy(self.client, time_blocks=self.time_blocks, segments=self.segments)
        self.sim.policy = self.policy
        self._oracle = best_by_campaign(campaign_ctrs(self.sim.market, segment_traffic(self.sim.market)))

    def run(self, on_hour: Callable[[HourStats], None] | None = None) -> list[HourStats]:
        for chunk in self.sim.run():
            if chunk.index >= self.sim.config.days * 24:
                self.writer.write(chunk.records)  # the stragglers after the last hour
                break
            stats = self.step(chunk.index, chunk.end_ms, chunk.records)
            if on_hour is not None:
                on_hour(stats)
        return self.hours

    def step(self, hour: int, end_ms: int, records: list[SimRecord]) -> HourStats:
        # The simulator decided the whole hour before yielding it: count since the last step.
        before, self._sources = self._sources, self.policy.sources.copy()
        self.writer.write(records)
        stats = self._measure(hour, records)
        now = self._sources
        decided = sum(n - before[k] for k, n in now.items() if k[0] == CREATIVE)
        by_policy = now[(CREATIVE, "policy")] - before[(CREATIVE, "policy")]
        stats.from_policy = by_policy / decided if decided else 0.0
        t0 = time.monotonic()
        self._pace(end_ms)
        stats.wait_s = time.monotonic() - t0
        stats.versions = self.client.stats().installed
        self.hours.append(stats)
        return stats

    def _measure(self, hour: int, records: Iterable[SimRecord]) -> HourStats:
        market = self.sim.market
        served, oracle, seg_oracle, uniform = [], [], [], []
        spend: dict[str, float] = defaultdict(float)
        n, clicks, entered = 0, 0, 0
        rates: list[float] = []
        multipliers: list[float] = []
        for r in records:
            n += 1
            if r.malformed or r.duplicate:
                continue
            if r.topic == events.CLICKS:
                clicks += 1
                continue
            if r.topic == events.AUCTIONS:
                auction = json.loads(r.value)
                for d in auction["decisions"]:
                    (rates if d["agent"] == BUDGET else multipliers).append(float(d["action"]))
                entered += auction["bid"] > 0
                continue
            if r.topic != events.IMPRESSIONS:
                continue
            imp = json.loads(r.value)
            if imp["event_id"] in self._seen:
                continue
            self._seen.add(imp["event_id"])
            if not r.late:
                self._closing.append((imp["ts"], len(imp["decisions"])))
            c = market.campaign(imp["campaign_id"])
            # The true segment: the logged one is the segment agent's label.
            row = market.ctr[c.index, market.true_segment(imp["user_id"])]
            served.append(row[market.creative_index(c.campaign_id, imp["creative_id"])])
            oracle.append(row[market.creative_index(c.campaign_id, self._oracle[c.campaign_id])])
            seg_oracle.append(row.max())
            uniform.append(row.mean())
            spend[c.campaign_id] += imp["win_price"]

        def mean(xs: list[float]) -> float:
            return float(np.mean(xs)) if xs else float("nan")

        return HourStats(
            hour=hour,
            records=n,
            impressions=len(served),
            clicks=clicks,
            ctr=mean(served),
            oracle_ctr=mean(oracle),
            segment_oracle_ctr=mean(seg_oracle),
            uniform_ctr=mean(uniform),
            from_policy=0.0,
            versions=0,
            spend=dict(spend),
            requests=len(rates) if rates else entered,
            entered=entered,
            pacing_rate=mean(rates),
            bid_multiplier=mean(multipliers),
        )

    def _pace(self, end_ms: int) -> None:
        closed_before = end_ms - self.click_window_ms - self.out_of_orderness_ms - WATERMARK_SLACK_MS
        due = [d for ts, d in self._closing if ts < closed_before]
        self._closing = [(ts, d) for ts, d in self._closing if ts >= closed_before]
        if not due:
            return
        self._expected += sum(due)
        installed = self.client.stats().installed
        # Wait for the target, or until the topic stays quiet for quiet_s (the job has done what its
        # watermark allows: sparse clicks at night hold it back a little), or the timeout.
        start = time.monotonic()
        have, changed_at = -1, start
        while time.monotonic() - start < self.reward_timeout_s:
            now = sum(kafka_tools.end_offsets(self.bootstrap, self.rewards_topic).values())
            if now >= self._expected:
                break
            if now != have:
                have, changed_at = now, time.monotonic()
            elif time.monotonic() - changed_at >= self.quiet_s:
                break
            time.sleep(0.1)
        # The rewards reach the learners in the next micro-batch; wait for the policies they publish.
        deadline = time.monotonic() + self.publish_timeout_s
        while self.client.stats().installed == installed and time.monotonic() < deadline:
            time.sleep(0.05)


def job_config(
    bootstrap: str, redis_url: str, *, prefix: str = "", tables: str | None = None
) -> app_config.AppConfig:
    """The feedback job's config for the loop: unbounded, learners on, short micro-batches."""
    cfg = app_config.load().replace(
        kafka={
            "bootstrap_servers": bootstrap,
            "topic_prefix": prefix,
            "group_id": f"{prefix}adloop-demo",
            "bounded": False,
        },
        redis={"url": redis_url, "key_prefix": f"{prefix}adloop".rstrip(".") or "adloop"},
        batches={"interval_ms": 500},
        publish={"interval_ms": 200},
        job={"learners": True},
        # The creative agent learns clicks, so the CTR oracle of the report is exactly its target
        # (with conversion credit its target is value per impression, much noisier over a day).
        rewards={"creative": {"click": 1.0, "credit": 0.0, "cost": 0.0}},
    )
    if tables is not None:
        cfg = cfg.replace(tables={"rewards_path": tables})
    return cfg


def start_loop(
    cfg: app_config.AppConfig, sim_cfg: SimConfig, *, seed: int, segments: bool = True
) -> tuple[Any, ServingClient, KafkaWriter, ClosedLoop]:
    """Create the topics, start the job and the serving client, and wire the loop (caller closes).
    With ``segments`` the serving nodes use the segment agent (``demo_learners``); without, they
    log the simulator's own segment labels."""
    from jobs import feedback_job

    cfg = cfg.replace(campaigns=campaign_table(sim_cfg))
    if segments:
        cfg = cfg.replace(learners=demo_learners(sim_cfg))
    bootstrap = cfg.kafka.bootstrap_servers
    kafka_settings = cfg.kafka.librdkafka()  # the config's security settings, for every client
    kafka_tools.create_topics(
        bootstrap, cfg.kafka.input_topics() + cfg.kafka.output_topics(), config=kafka_settings
    )
    job = feedback_job.run(cfg, wait=False)
    store = RedisPolicyStore(cfg.redis.url, **cfg.redis.store_options())
    client = ServingClient(store, seed=seed)
    client.start()
    writer = KafkaWriter(bootstrap, topic_prefix=cfg.kafka.topic_prefix, config=kafka_settings)
    loop = ClosedLoop(
        sim=Simulator(sim_cfg),
        writer=writer,
        client=client,
        bootstrap=bootstrap,
        rewards_topic=cfg.kafka.topic("rewards"),
        click_window_ms=cfg.attribution.click_window_ms,
        out_of_orderness_ms=cfg.ingest.out_of_orderness_ms,
        time_blocks=cfg.campaigns.time_blocks,
        segments=cfg.learners.specs["segment"].get("n_segments", 4) if segments else None,
    )
    return job, client, writer, loop


def demo_learners(sim_cfg: SimConfig) -> dict[str, Any]:
    """The segment agent for the simulated market: as many segments as the market has (at least
    two), clustered on the user's vector (the features after the time of day), every impression's
    features sampled (the demo's traffic is a few thousand impressions a campaign a day)."""
    return {
        "segment": {
            "learner": "SegmentAgent",
            "n_segments": max(2, sim_cfg.n_segments),
            "features": list(range(2, sim_cfg.feature_dim)),
            "sample_rate": 1.0,
        },
    }


def campaign_table(sim_cfg: SimConfig) -> dict[str, Any]:
    """The job's ``campaigns`` section for the simulated market: each campaign's daily budget, and
    the simulator's time blocks."""
    budgets = {c.campaign_id: c.daily_budget for c in Market(sim_cfg).campaigns}
    return {"time_blocks": sim_cfg.time_blocks, "budgets": budgets}


@dataclass(frozen=True)
class Baseline:
    """A fixed-multiplier bidder on the same market and draws: each campaign's best creative, every
    request entered, bids at ``multiplier`` times the base bid until the budget is spent."""

    multiplier: float
    clicks: list[int]  # per day
    spend: dict[str, list[float]]  # per campaign, per day


def fixed_multiplier_baseline(sim_cfg: SimConfig, multiplier: float = 1.0) -> Baseline:
    """Run the simulator offline (same seed, hence the same requests, prices and click draws)
    with :class:`~sim.policies.FixedPolicy`; clicks counted as :meth:`ClosedLoop._measure` does."""
    market = Market(sim_cfg)
    best = best_by_campaign(campaign_ctrs(market, segment_traffic(market)))
    creatives = {(c, s): best[c] for c in best for s in market.segments}
    sim = Simulator(sim_cfg, policy=FixedPolicy(creatives, bid_multiplier=multiplier))
    clicks = [0] * sim_cfg.days
    for chunk in sim.run():
        if chunk.index < sim_cfg.days * 24:
            clicks[chunk.index // 24] += sum(
                1 for r in chunk.records if r.topic == events.CLICKS and not (r.malformed or r.duplicate)
            )
    return Baseline(multiplier, clicks, {c: list(v) for c, v in sim.truth.spend.items()})


def daily_clicks(hours: list[HourStats]) -> list[int]:
    return [sum(h.clicks for h in hours[d : d + 24]) for d in range(0, len(hours), 24)]


# -- report ---------------------------------------------------------------------------------------


def _daily(hours: list[HourStats], attr: str) -> list[float]:
    out = []
    for day in range(0, len(hours), 24):
        block = [h for h in hours[day : day + 24] if h.impressions]
        weights = [h.impressions for h in block]
        out.append(float(np.average([getattr(h, attr) for h in block], weights=weights)) if block else 0.0)
    return out


def write_report(loop: ClosedLoop, out_dir: Path, elapsed_s: float) -> tuple[Path, Path]:
    """A text summary and a PNG plot: each agent's learning curve (the creative agent's CTR against the
    oracle's, spend against budget per day, the bid agent's clicks against a fixed-multiplier
    baseline, the actions served) and the versions over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    hours, market, client = loop.hours, loop.sim.market, loop.client
    stamp = time.strftime("%Y%m%d-%H%M%S")
    text_path, png_path = out_dir / f"closed-loop-{stamp}.txt", out_dir / f"closed-loop-{stamp}.png"
    days = len(hours) // 24

    lines = [
        f"adloop closed-loop demo: {days} simulated days, {len(market.campaigns)} campaigns, "
        f"seed {loop.sim.config.seed}, {elapsed_s:.0f} s wall clock",
        "",
        "day  impressions  CTR served  oracle (per campaign)  oracle (per segment)  uniform  by policy",
    ]
    for d, (ctr, oracle, seg, uni, pol) in enumerate(
        zip(
            *(
                _daily(hours, a)
                for a in ("ctr", "oracle_ctr", "segment_oracle_ctr", "uniform_ctr", "from_policy")
            ),
            strict=True,
        ),
        start=1,
    ):
        imps = sum(h.impressions for h in hours[(d - 1) * 24 : d * 24])
        lines.append(
            f"{d:>3}  {imps:>11}  {ctr:>10.4f}  {oracle:>21.4f}  {seg:>20.4f}  {uni:>7.4f}  {pol:>8.0%}"
        )
    lines += [
        "",
        "campaign  best creative per true segment: truth / learned  versions "
        "(creative/bid/budget/segment)  spend/budget per day",
    ]
    learned = learned_best(client, market)
    spend = loop.sim.truth.spend
    n_seg = len(market.segments)
    for c in market.campaigns:
        cid = c.campaign_id
        versions = "/".join(str(client.version(cid, a)) for a in AGENTS)
        use = " ".join(f"{s / c.daily_budget:.0%}" for s in spend.get(cid, []))
        truth = [market.best_creative(cid, s).rsplit("-", 1)[1] for s in market.segments]
        got = [learned.get((cid, s), "-").rsplit("-", 1)[-1] for s in range(n_seg)]
        right = sum(t == g for t, g in zip(truth, got, strict=True))
        lines.append(f"{cid:<8}  {' '.join(truth)} / {' '.join(got)}  ({right}/{n_seg})  {versions}  {use}")
    baseline = fixed_multiplier_baseline(loop.sim.config)
    loop_clicks = daily_clicks(hours)
    lines += [
        "",
        "day  clicks (loop)  clicks (fixed multiplier 1, best creatives)  spend (loop)  spend (fixed)",
    ]
    for d in range(days):
        loop_spend = sum(v[d] for v in spend.values() if d < len(v))
        fixed_spend = sum(v[d] for v in baseline.spend.values() if d < len(v))
        lines.append(
            f"{d + 1:>3}  {loop_clicks[d]:>13}  {baseline.clicks[d]:>43}  "
            f"{loop_spend:>12.1f}  {fixed_spend:>13.1f}"
        )
    monotonic = all(list(v) == sorted(set(v)) for v in versions_by_key(client, market).values())
    third = [h for h in hours[-(len(hours) // 3) :] if h.impressions]
    served = sum(h.ctr * h.impressions for h in third)
    per_segment = served / sum(h.segment_oracle_ctr * h.impressions for h in third)
    per_campaign = served / sum(h.oracle_ctr * h.impressions for h in third)
    purity = segment_purity(client, market)
    right_pairs = sum(
        learned.get((c.campaign_id, s)) == market.best_creative(c.campaign_id, market.segments[s])
        for c in market.campaigns
        for s in range(n_seg)
    )
    lines += [
        "",
        f"last third of the run: CTR served {per_segment:.1%} of the per-segment oracle, "
        f"{per_campaign:.1%} of the per-campaign oracle",
        "segment agent, purity of its segments against the true ones (2,000 users per campaign): "
        + " ".join(f"{c} {p:.2f}" for c, p in purity.items()),
        f"learned best creative = true best for {right_pairs}/{len(market.campaigns) * n_seg} "
        "(campaign, true segment) pairs",
        f"policy versions installed by the serving client: {client.stats().installed}; "
        f"versions only went up for every key: {monotonic}",
        "CTRs are the true CTRs of the creatives served, weighted by impressions. 'per campaign' serves each "
        "campaign's best creative over its traffic (what the per-campaign learners can reach); 'per segment' "
        "the best for each segment (a contextual policy's bound).",
    ]
    text_path.write_text("\n".join(lines) + "\n")

    fig, axes = plt.subplots(5, 1, figsize=(10, 18))
    t = [h.hour / 24 for h in hours]
    ax = axes[0]
    for attr, label, style in (
        ("ctr", "served (closed loop)", "-"),
        ("oracle_ctr", "oracle: best creative per campaign", "--"),
        ("segment_oracle_ctr", "oracle: best creative per segment", ":"),
        ("uniform_ctr", "uniform random", "-."),
    ):
        ax.plot(t, [getattr(h, attr) for h in hours], style, label=label)
    ax.set(
        title="Expected CTR of the creatives served, per simulated hour", xlabel="simulated day", ylabel="CTR"
    )
    ax.legend(fontsize=8)
    ax = axes[1]
    width = 0.8 / max(len(market.campaigns), 1)
    for i, c in enumerate(market.campaigns):
        used = spend.get(c.campaign_id, [])
        ax.bar(np.arange(len(used)) + 1 + (i - len(market.campaigns) / 2) * width,
               [s / c.daily_budget for s in used], width, label=c.campaign_id)  # fmt: skip
    ax.axhline(1.0, color="k", lw=1, ls="--")
    ax.set(
        title="Spend / daily budget per campaign and day", xlabel="simulated day", ylabel="share of budget"
    )
    ax.legend(fontsize=7, ncol=5)
    ax = axes[2]
    x = np.arange(1, days + 1)
    ax.plot(x, loop_clicks[:days], "o-", label="closed loop (bid and budget agents)")
    ax.plot(x, baseline.clicks[:days], "s--", label="fixed multiplier 1, best creatives, no pacing")
    ax.set(title="Bid agent: clicks per day at the same budgets", xlabel="simulated day", ylabel="clicks")
    ax.set_xticks(x)
    ax.legend(fontsize=8)
    ax = axes[3]
    ax.plot(t, [h.pacing_rate for h in hours], label="pacing rate (budget agent)")
    ax.plot(t, [h.bid_multiplier for h in hours], label="bid multiplier (bid agent)")
    ax.set(
        title="Actions served, mean per simulated hour", xlabel="simulated day", ylabel="rate / multiplier"
    )
    ax.legend(fontsize=8)
    ax = axes[4]
    ax.plot(t, [h.versions for h in hours], label="versions installed by the client")
    ax2 = ax.twinx()
    ax2.plot(t, [h.from_policy for h in hours], "g:", label="creative decisions by a published policy")
    ax2.set_ylim(0, 1.05)
    ax.set(
        title="Policy versions published over time", xlabel="simulated day", ylabel="versions (cumulative)"
    )
    ax.legend(loc="upper left", fontsize=8)
    ax2.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return text_path, png_path


def learned_best(client: ServingClient, market: Market) -> dict[tuple[str, int], str]:
    """Per campaign and true segment, the creative the published policies rate highest (posterior
    mean reward) for the segment's typical user: the segment policy puts that user in a segment,
    whose creative bandit answers (the pooled one for a segment it has not learned; the one
    bandit of a policy without segments)."""
    out = {}
    for c in market.campaigns:
        record = client.record(c.campaign_id, CREATIVE)
        if record is None:
            continue
        policy = learners.from_params(record.params)
        segments = client.record(c.campaign_id, "segment")
        segment_policy = learners.from_params(segments.params) if segments is not None else None
        for s in range(len(market.segments)):
            bandit = policy
            if isinstance(policy, learners.PerSegment):
                centre = [0.0, 1.0, *market.user_vectors[market.user_segment == s].mean(axis=0).tolist()]
                label = segment_policy.segment_of(centre) if segment_policy is not None else None
                bandit = policy.segment_learner(label or market.segments[s]) or policy.pooled
            out[(c.campaign_id, s)] = max(c.creatives, key=lambda cr: bandit.posterior_params(cr)[0])
    return out


def segment_purity(client: ServingClient, market: Market, users: int = 2_000) -> dict[str, float]:
    """Per campaign, the purity of the published segment policy's segments against the market's
    true segments, over ``users`` users drawn as the traffic draws them."""
    rng = np.random.default_rng(0)
    sample = market.sample_users(rng, users)
    features = market.features(sample, np.zeros(users, dtype=np.int64)).tolist()
    truth = market.user_segment[sample]
    out = {}
    for c in market.campaigns:
        record = client.record(c.campaign_id, "segment")
        if record is None:
            continue
        agent = learners.from_params(record.params)
        groups: dict[Any, list[int]] = defaultdict(list)
        for x, s in zip(features, truth.tolist(), strict=True):
            groups[agent.segment_of(x)].append(s)
        out[c.campaign_id] = sum(int(np.bincount(g).max()) for g in groups.values()) / users
    return out


def versions_by_key(client: ServingClient, market: Market) -> dict[tuple[str, str], tuple[int, ...]]:
    return {
        (c.campaign_id, a): client.versions_seen(c.campaign_id, a) for c in market.campaigns for a in AGENTS
    }


# -- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=6, help="simulated days (default 6)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--report-dir", type=Path, default=ROOT / "reports")
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error(f"--days: expected an integer >= 1, found {args.days}")

    os.environ.setdefault("ADLOOP_WORK_DIR", str(svc.DEFAULT_WORK))
    _say("starting Kafka and Redis on loopback")
    try:
        running = svc.start(ttl_s=3600, owner_pid=os.getpid())
    except svc.ServiceError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    job = client = writer = None
    try:
        _say(f"kafka {running.kafka_bootstrap}, redis {running.redis_url}")
        # The reward table goes under the work directory with the services' data, not the shared one.
        tables = str(svc.work_dir() / "tables" / "demo-rewards")
        cfg = job_config(running.kafka_bootstrap, running.redis_url, tables=tables)
        sim_cfg = demo_sim_config(args.days, args.seed)
        t_start = time.monotonic()
        _say("starting the feedback job (unbounded, learners on) on the local mini-cluster")
        job, client, writer, loop = start_loop(cfg, sim_cfg, seed=args.seed)
        market = loop.sim.market
        _say(
            f"serving {args.days} simulated days of a {len(market.campaigns)}-campaign market through the "
            f"serving client; each hour goes to Kafka and waits for the job's rewards and policies"
        )

        def progress(h: HourStats) -> None:
            if (h.hour + 1) % 24:
                return
            day = (h.hour + 1) // 24
            block = loop.hours[-24:]
            ctr, oracle, segment_oracle, pol = (
                _daily(block, a)[0] for a in ("ctr", "oracle_ctr", "segment_oracle_ctr", "from_policy")
            )
            _say(
                f"  day {day}/{args.days}: {sum(b.records for b in block)} records, "
                f"{sum(b.impressions for b in block)} impressions, CTR {ctr:.4f}: {ctr / segment_oracle:.0%} "
                f"of the per-segment oracle {segment_oracle:.4f}, {ctr / oracle:.0%} of the per-campaign "
                f"one {oracle:.4f}; {pol:.0%} by policy, {h.versions} policy versions seen, "
                f"waited {sum(b.wait_s for b in block):.0f}s for the job"
            )
            _say(
                f"    {sum(b.clicks for b in block)} clicks, "
                f"spend {sum(sum(b.spend.values()) for b in block):.1f}, "
                f"{sum(b.entered for b in block)}/{sum(b.requests for b in block)} requests entered; "
                f"by block of 6 h: pacing rate "
                + " ".join(
                    f"{np.nanmean([b.pacing_rate for b in block[i : i + 6]]):.2f}" for i in range(0, 24, 6)
                )
                + ", bid multiplier "
                + " ".join(
                    f"{np.nanmean([b.bid_multiplier for b in block[i : i + 6]]):.2f}" for i in range(0, 24, 6)
                )
                + ", spend "
                + " ".join(
                    f"{sum(sum(b.spend.values()) for b in block[i : i + 6]):.0f}" for i in range(0, 24, 6)
                )
            )

        loop.run(progress)
        writer.close()
        writer = None
        elapsed = time.monotonic() - t_start
        text, png = write_report(loop, args.report_dir, elapsed)
        _say(f"loop done in {elapsed:.0f}s; report: {text}")
        _say(f"plot: {png}")
        print(text.read_text(), end="", flush=True)
        return 0
    finally:
        if writer is not None:
            writer.abort()
        if client is not None:
            client.stop()
            client.store.close()
        if job is not None:
            _say("cancelling the job")
            try:
                job.cancel().result()
            except Exception as e:  # already failed or finished: nothing left to cancel
                _say(f"  job cancel: {e}")
        _say("stopping Kafka and Redis")
        svc.stop()


def demo_sim_config(days: int, seed: int) -> SimConfig:
    """A few campaigns, with enough traffic per campaign that a day of data separates the creatives."""
    return SimConfig(days=days, seed=seed, n_campaigns=6, n_users=20_000, requests_per_day=20_000)


if __name__ == "__main__":
    sys.exit(main())
