"""Redis key layout of the policy store, in one place so writers and readers agree."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["KeyLayout", "StreamId", "parse_stream_id"]

StreamId = tuple[int, int]  # (milliseconds, sequence), comparable


def parse_stream_id(value: str | bytes) -> StreamId:
    """``"1700000000000-3"`` -> ``(1700000000000, 3)``.

    >>> parse_stream_id(b"12-3") < parse_stream_id("12-10")
    True
    """
    text = value.decode() if isinstance(value, bytes) else value
    ms, sep, seq = text.partition("-")
    if not (sep and ms.isdigit() and seq.isdigit()):
        raise ValueError(f"parse_stream_id: expected '<ms>-<seq>'; got {text!r}")
    return int(ms), int(seq)


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Keys under ``prefix``.

    - ``<prefix>:policy:<campaign>:<agent>``: a hash with ``version`` and ``record`` (codec JSON);
    - ``<prefix>:policy-updates``: the stream of notifications, and the pub/sub channel of the same name;
    - ``<prefix>:history:<campaign>:<agent>``: a capped stream of every record written (version,
      updated_at, record), newest last: the versions an operator can read back and return to;
    - ``<prefix>:control:<campaign>:<agent>``: a hash of an operator's holds on the key: ``pinned``
      (the learners' writes are refused) and ``adopt`` (the learners must first take over the
      params of that version, written by a rollback);
    - ``<prefix>:rollout:<campaign>:<agent>``: a hash of the key's rollout, when one runs: the
      ``candidate`` record, the ``share`` of requests it serves, and ``shadow`` ("1": serving
      nodes also compute and log the candidate's choice on the control's requests).

    For Redis Cluster, put a hash tag in the prefix (``"{adloop}"``) so the script's keys share a slot.

    >>> keys = KeyLayout("adloop")
    >>> keys.policy("c01", "bid"), keys.stream, keys.channel
    ('adloop:policy:c01:bid', 'adloop:policy-updates', 'adloop:policy-updates')
    >>> keys.history("c01", "bid"), keys.control("c01", "bid")
    ('adloop:history:c01:bid', 'adloop:control:c01:bid')
    >>> keys.scan_pattern("c*1")
    'adloop:policy:c\\\\*1:*'
    """

    prefix: str = "adloop"

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or self.prefix == "":
            raise ValueError(f"KeyLayout: prefix must be a non-empty string; got {self.prefix!r}")

    def policy(self, campaign_id: str, agent: str) -> str:
        """The hash holding the policy of (campaign, agent)."""
        return f"{self.prefix}:policy:{campaign_id}:{agent}"

    def history(self, campaign_id: str, agent: str) -> str:
        """The capped stream of every record written for (campaign, agent)."""
        return f"{self.prefix}:history:{campaign_id}:{agent}"

    def control(self, campaign_id: str, agent: str) -> str:
        """The hash of an operator's holds on (campaign, agent): ``pinned``, ``adopt``."""
        return f"{self.prefix}:control:{campaign_id}:{agent}"

    def rollout(self, campaign_id: str, agent: str) -> str:
        """The hash of the key's rollout: ``candidate``, ``share``, ``shadow``."""
        return f"{self.prefix}:rollout:{campaign_id}:{agent}"

    @property
    def stream(self) -> str:
        """The notification stream."""
        return f"{self.prefix}:policy-updates"

    @property
    def channel(self) -> str:
        """The pub/sub channel (same name as the stream: they are different namespaces)."""
        return f"{self.prefix}:policy-updates"

    def scan_pattern(self, campaign_id: str | None = None) -> str:
        """SCAN MATCH pattern for all policies, or those of one campaign (a superset: filter records)."""
        return self._pattern("policy", campaign_id)

    def rollout_pattern(self, campaign_id: str | None = None) -> str:
        """SCAN MATCH pattern for all rollouts, or those of one campaign."""
        return self._pattern("rollout", campaign_id)

    def _pattern(self, kind: str, campaign_id: str | None) -> str:
        head = f"{_glob_escape(self.prefix)}:{kind}:"
        return head + "*" if campaign_id is None else f"{head}{_glob_escape(campaign_id)}:*"

    def owned_patterns(self) -> list[str]:
        """SCAN MATCH patterns of every per-key entry under the prefix: policies, histories, holds."""
        return [
            f"{_glob_escape(self.prefix)}:{kind}:*" for kind in ("policy", "history", "control", "rollout")
        ]
