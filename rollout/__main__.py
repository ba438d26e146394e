"""The operator's CLI for policies: list a key's versions with what each earned, show one, roll
back to one, pin one, unpin.

    python -m rollout versions c01 creative            # newest first, with reward per decision
    python -m rollout show c01 creative [--version 41]
    python -m rollout rollback c01 creative --to 41    # learners adopt v41's params, go on learning
    python -m rollout pin c01 creative [--version 41]  # publication stops for the key
    python -m rollout unpin c01 creative
    python -m rollout candidate c01 creative --version 41 --share 0.1 [--shadow]
    python -m rollout candidate c01 creative --params cand.json --share 0   # shadow only
    python -m rollout share c01 creative 0.25          # the candidate's share of requests
    python -m rollout end c01 creative                 # the control serves everything again

Every command takes ``--config`` (the job's YAML): the Redis, Kafka and reward-table settings.
Pins and rollbacks live in Redis, so they survive restarts of the job and of serving nodes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path

import redis
from confluent_kafka import KafkaException

from config import app as app_config
from state import policy_control
from state.codec import PolicyRecord
from state.policy_store import PolicyStoreError, RedisPolicyStore


def _store(cfg: app_config.AppConfig) -> RedisPolicyStore:
    return RedisPolicyStore(cfg.redis.url, **cfg.redis.store_options())


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _origin(record: PolicyRecord) -> str:
    if record.rolled_back_from is not None:
        return f"rollback of v{record.rolled_back_from} to v{record.republished_from}"
    if record.republished_from is not None:
        return f"republish of v{record.republished_from} (pin or promotion)"
    return "learned"


def _find(cfg: app_config.AppConfig, store: RedisPolicyStore, campaign: str, agent: str, version: int):
    record = policy_control.find_version(store, campaign, agent, version)
    if record is None:
        from rollout.archive import find_in_topic

        print(f"v{version} is not in Redis' history; searching the policy-updates topic ...", file=sys.stderr)
        record = find_in_topic(
            cfg.kafka.librdkafka(), cfg.kafka.topic("policy_updates"), campaign, agent, version
        )
    if record is None:
        raise ValueError(f"{campaign}/{agent} has no version {version} in Redis' history or on the topic")
    return record


def cmd_versions(cfg, store, args) -> None:
    from rollout.rewards import reward_by_version

    history = store.history(args.campaign, args.agent, count=args.limit)
    if not history:
        raise ValueError(f"{args.campaign}/{args.agent} has no published version in Redis")
    rewards = reward_by_version(cfg.tables.absolute().rewards_uri(), args.campaign, args.agent)
    holds = store.holds(args.campaign, args.agent)
    held = ", ".join(f"{k} v{v}" for k, v in holds.items()) or "no holds"
    rollout = store.get_rollout(args.campaign, args.agent)
    if rollout is not None:
        held += (
            f"; candidate v{rollout.candidate.version} (from v{rollout.candidate.republished_from}) "
            f"serving {rollout.share:.0%}{', shadow on' if rollout.shadow else ''}"
        )
    print(f"{args.campaign}/{args.agent}: {held}")
    header = ("version", "published (UTC)", "learner", "decisions", "reward/dec")
    print("{:>9}  {:23}  {:18}  {:>9}  {:>10}  origin".format(*header))
    for record in history:
        earned = rewards.get(record.version)
        decisions = earned.decisions if earned else 0
        per = earned.per_decision if earned else None
        print(
            f"{record.version:>9}  {_when(record.updated_at_ms):23}  {record.learner:18}  {decisions:>9}  "
            f"{'-' if per is None else f'{per:.4f}':>10}  {_origin(record)}"
        )


def cmd_show(cfg, store, args) -> None:
    if args.version is None:
        record = store.get(args.campaign, args.agent)
        if record is None:
            raise ValueError(f"{args.campaign}/{args.agent} has no published policy")
    else:
        record = _find(cfg, store, args.campaign, args.agent, args.version)
    doc = {
        "campaign": record.campaign_id,
        "agent": record.agent,
        "version": record.version,
        "learner": record.learner,
        "published": _when(record.updated_at_ms),
        "origin": _origin(record),
        "params": record.params,
    }
    print(json.dumps(doc, indent=2))


def cmd_rollback(cfg, store, args) -> None:
    source = _find(cfg, store, args.campaign, args.agent, args.to)
    record = policy_control.rollback(store, source)
    print(
        f"{args.campaign}/{args.agent}: v{record.rolled_back_from} rolled back to v{args.to}'s params "
        f"as v{record.version}"
    )


def cmd_pin(cfg, store, args) -> None:
    if args.version is None:
        source = store.get(args.campaign, args.agent)
        if source is None:
            raise ValueError(f"{args.campaign}/{args.agent} has no published policy to pin")
    else:
        source = _find(cfg, store, args.campaign, args.agent, args.version)
    record = policy_control.pin(store, source)
    print(
        f"{args.campaign}/{args.agent}: pinned v{source.version}'s params as v{record.version}; "
        "publication stops"
    )


def cmd_unpin(cfg, store, args) -> None:
    pinned = policy_control.unpin(store, args.campaign, args.agent)
    if pinned is None:
        print(f"{args.campaign}/{args.agent}: was not pinned")
    else:
        print(f"{args.campaign}/{args.agent}: unpinned (was v{pinned}); the learners publish again")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, found {text!r}")
    return int(text)


def _share(text: str) -> float:
    try:
        share = float(text)
    except ValueError:
        share = math.nan
    if not 0.0 <= share <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share in [0, 1], found {text!r}")
    return share


def cmd_candidate(cfg, store, args) -> None:
    if (args.version is None) == (args.params is None):
        raise ValueError("candidate: give either --version (a published version) or --params (a JSON file)")
    if args.params is not None:
        params = json.loads(Path(args.params).read_text())
        if not isinstance(params, dict):
            raise ValueError(f"candidate: {args.params} must hold a JSON object of learner params")
        params.setdefault("version", 0)
        source = PolicyRecord.from_params(args.campaign, args.agent, params, updated_at_ms=0)
        import learners

        learners.from_params(source.params)  # refuse params no serving node could rebuild
    else:
        source = _find(cfg, store, args.campaign, args.agent, args.version)
    rollout = policy_control.start_rollout(store, source, args.share, args.shadow)
    print(
        f"{args.campaign}/{args.agent}: candidate v{rollout.candidate.version} serves {rollout.share:.0%} "
        f"of requests{', shadow on' if rollout.shadow else ''}"
    )


def cmd_share(cfg, store, args) -> None:
    rollout = policy_control.set_share(store, args.campaign, args.agent, args.share)
    print(f"{args.campaign}/{args.agent}: candidate v{rollout.candidate.version} serves {rollout.share:.0%}")


def cmd_end(cfg, store, args) -> None:
    ended = policy_control.end_rollout(store, args.campaign, args.agent)
    print(
        f"{args.campaign}/{args.agent}: "
        + ("had no rollout" if ended is None else f"rollout of v{ended.candidate.version} ended")
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m rollout", description=__doc__.splitlines()[0])
    top.add_argument("--config", default=None, help="the job's YAML config (default flink-conf/adloop.yaml)")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, func, version: str | None = None) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("campaign", help="campaign id")
        sub.add_argument("agent", help="agent: creative, bid, budget or segment")
        if version is not None:
            sub.add_argument("--version", type=int, default=None, help=version)
        sub.set_defaults(func=func)
        return sub

    versions = command(
        "versions", "list the versions kept, newest first, with what each earned", cmd_versions
    )
    versions.add_argument("--limit", type=_positive, default=20, help="at most this many (default 20)")
    command("show", "print a version's record and params as JSON", cmd_show, "the version (default: current)")
    rollback = command(
        "rollback",
        "serve a known-good version's params again, under a new version; the learners adopt them",
        cmd_rollback,
    )
    rollback.add_argument("--to", type=int, required=True, help="the version to return to")
    command(
        "pin",
        "serve a version's params under a new version and stop publication for the key",
        cmd_pin,
        "the version to pin (default: current)",
    )
    command("unpin", "lift the key's pin: the learners publish again", cmd_unpin)
    candidate = command(
        "candidate",
        "roll out a candidate beside the control: a published version or params from a file",
        cmd_candidate,
        "the published version to roll out",
    )
    candidate.add_argument("--params", default=None, help="a JSON file of learner params instead")
    candidate.add_argument("--share", type=_share, required=True, help="share of requests it serves, 0..1")
    candidate.add_argument(
        "--shadow", action="store_true", help="also log its choice on the control's requests"
    )
    share = command("share", "set the share of requests the key's candidate serves", cmd_share)
    share.add_argument("share", type=_share, help="0..1")
    command("end", "end the key's rollout: the control serves every request", cmd_end)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        cfg = app_config.load(args.config)
        with _store(cfg) as store:
            args.func(cfg, store, args)
    except (ValueError, PolicyStoreError, RuntimeError, OSError, redis.RedisError, KafkaException) as e:
        print(f"rollout: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
