"""Policy records and update notifications, to and from compact JSON / stream fields.

A record is what the store keeps per (campaign, agent); a notification is the small message every
write appends to the stream and publishes: enough for a subscriber to decide whether to fetch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "MAX_VERSION",
    "Notification",
    "PolicyKey",
    "PolicyRecord",
    "Rollout",
    "decode_record",
    "encode_record",
]

SCHEMA_VERSION = 1
# Versions are compared inside a Lua script, where numbers are doubles: keep them exact.
MAX_VERSION = 2**53 - 1

PolicyKey = tuple[str, str]  # (campaign_id, agent)


def _check_id(value: object, name: str, where: str) -> None:
    if not isinstance(value, str) or value == "":
        raise ValueError(f"{where}: {name} must be a non-empty string; got {value!r}")
    # The agent is the last segment of the Redis key, so it cannot contain the separator.
    if name == "agent" and ":" in value:
        raise ValueError(f"{where}: agent must not contain ':'; got {value!r}")


def _check_int(value: object, name: str, where: str, upper: int = MAX_VERSION) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= upper:
        raise ValueError(f"{where}: {name} must be an int in [0, {upper}]; got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """The published policy of one agent of one campaign.

    ``params`` is the learner's ``to_params()`` dict; ``version`` is the policy version (writes are
    accepted only when it is higher than the stored one); ``updated_at_ms`` is the wall-clock time
    of publishing, which serving nodes use to decide staleness. A record an operator wrote again
    under a new version (a rollback, a pin) names the version whose params it carries
    (``republished_from``) and, for a rollback, the version it replaced (``rolled_back_from``).

    >>> rec = PolicyRecord("c01", "creative", 3, "UCB", 1, {"learner": "UCB"}, 1700000000000)
    >>> decode_record(encode_record(rec)) == rec
    True
    """

    campaign_id: str
    agent: str
    version: int
    learner: str
    schema_version: int
    params: dict[str, Any]
    updated_at_ms: int
    republished_from: int | None = None
    rolled_back_from: int | None = None

    def __post_init__(self) -> None:
        where = "PolicyRecord"
        _check_id(self.campaign_id, "campaign_id", where)
        _check_id(self.agent, "agent", where)
        _check_int(self.version, "version", where)
        _check_id(self.learner, "learner", where)
        _check_int(self.schema_version, "schema_version", where)
        _check_int(self.updated_at_ms, "updated_at_ms", where)
        if not isinstance(self.params, dict):
            raise ValueError(f"{where}: params must be a dict; got {type(self.params).__name__}")
        for name in ("republished_from", "rolled_back_from"):
            if getattr(self, name) is not None:
                _check_int(getattr(self, name), name, where)

    @property
    def key(self) -> PolicyKey:
        """``(campaign_id, agent)``."""
        return (self.campaign_id, self.agent)

    @classmethod
    def from_params(
        cls, campaign_id: str, agent: str, params: Mapping[str, Any], *, updated_at_ms: int
    ) -> PolicyRecord:
        """A record from a learner's ``to_params()``: version and learner name come from the params."""
        where = f"PolicyRecord.from_params({campaign_id!r}, {agent!r})"
        if not isinstance(params.get("learner"), str):
            raise ValueError(f"{where}: params['learner'] must be a string; got {params.get('learner')!r}")
        version = _check_int(params.get("version"), "params['version']", where)
        return cls(
            campaign_id=campaign_id,
            agent=agent,
            version=version,
            learner=params["learner"],
            schema_version=SCHEMA_VERSION,
            params=dict(params),
            updated_at_ms=updated_at_ms,
        )


def encode_record(record: PolicyRecord) -> str:
    """Compact JSON (no spaces); NaN and infinities are refused, as JSON has no such numbers."""
    doc = {
        "schema": record.schema_version,
        "campaign": record.campaign_id,
        "agent": record.agent,
        "version": record.version,
        "learner": record.learner,
        "updated_at": record.updated_at_ms,
        "params": record.params,
    }
    for name in ("republished_from", "rolled_back_from"):
        if getattr(record, name) is not None:
            doc[name] = getattr(record, name)
    try:
        return json.dumps(doc, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"encode_record({record.campaign_id!r}, {record.agent!r}): params must be JSON-safe; {exc}"
        ) from None


def decode_record(text: str | bytes) -> PolicyRecord:
    """Inverse of :func:`encode_record`; an unknown schema version is a ValueError naming it."""
    try:
        doc = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"decode_record: expected a JSON policy record; got invalid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"decode_record: expected a JSON object; got {type(doc).__name__}")
    schema = doc.get("schema")
    if schema != SCHEMA_VERSION:
        raise ValueError(
            f"decode_record: unknown policy record schema version {schema!r}; expected {SCHEMA_VERSION}"
        )
    missing = [f for f in ("campaign", "agent", "version", "learner", "updated_at", "params") if f not in doc]
    if missing:
        raise ValueError(f"decode_record: policy record is missing {missing}; got fields {sorted(doc)}")
    return PolicyRecord(
        campaign_id=doc["campaign"],
        agent=doc["agent"],
        version=doc["version"],
        learner=doc["learner"],
        schema_version=schema,
        params=doc["params"],
        updated_at_ms=doc["updated_at"],
        republished_from=doc.get("republished_from"),
        rolled_back_from=doc.get("rolled_back_from"),
    )


@dataclass(frozen=True, slots=True)
class Rollout:
    """A key's rollout: the ``candidate`` serves ``share`` of the requests (by a stable hash of the
    request id); with ``shadow`` the control's requests also get the candidate's choice, logged
    and not served."""

    candidate: PolicyRecord
    share: float
    shadow: bool

    def __post_init__(self) -> None:
        if not (isinstance(self.share, int | float) and 0.0 <= self.share <= 1.0):
            raise ValueError(f"Rollout: share must be a number in [0, 1]; got {self.share!r}")


@dataclass(frozen=True, slots=True)
class Notification:
    """One stream entry / pub/sub message: which policy moved to which version, and when;
    ``kind`` ``rollout`` when it is the key's rollout that changed (its candidate's version)."""

    campaign_id: str
    agent: str
    version: int
    updated_at_ms: int
    kind: str = "policy"

    @property
    def key(self) -> PolicyKey:
        """``(campaign_id, agent)``."""
        return (self.campaign_id, self.agent)

    @classmethod
    def of(cls, record: PolicyRecord) -> Notification:
        """The notification announcing ``record``."""
        return cls(record.campaign_id, record.agent, record.version, record.updated_at_ms)

    def fields(self) -> dict[str, str]:
        """Stream entry fields (strings, as Redis stores them)."""
        out = {
            "campaign": self.campaign_id,
            "agent": self.agent,
            "version": str(self.version),
            "updated_at": str(self.updated_at_ms),
        }
        if self.kind != "policy":
            out["kind"] = self.kind
        return out

    def to_json(self) -> str:
        """The pub/sub payload."""
        doc: dict[str, Any] = {
            "campaign": self.campaign_id,
            "agent": self.agent,
            "version": self.version,
            "updated_at": self.updated_at_ms,
        }
        if self.kind != "policy":
            doc["kind"] = self.kind
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def from_fields(cls, fields: Mapping[str | bytes, str | bytes]) -> Notification:
        """Parse stream entry fields (bytes or str); a malformed entry is a ValueError naming it."""
        f = {_text(k): _text(v) for k, v in fields.items()}
        try:
            version, updated_at = int(f["version"]), int(f["updated_at"])
            campaign, agent = f["campaign"], f["agent"]
        except (KeyError, ValueError):
            raise ValueError(
                f"Notification.from_fields: expected campaign, agent, version and updated_at; got {f!r}"
            ) from None
        return cls(campaign, agent, version, updated_at, f.get("kind", "policy"))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
