"""The Redis policy store: atomic, monotonic policy writes with a stream and pub/sub notification.

One Lua script does the compare-and-write, the ``XADD`` and the ``PUBLISH``, so a write and its
notification are never separated and a replay of older versions (after a job restart) never moves
a policy backwards. See ARCHITECTURE.md, "Policy publishing protocol (Redis)".
"""

from __future__ import annotations

import enum
import logging
import ssl
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.client import PubSub

from state.codec import Notification, PolicyKey, PolicyRecord, Rollout, decode_record, encode_record
from state.keys import KeyLayout

__all__ = [
    "PolicyStoreAuthError",
    "PolicyStoreError",
    "PolicyStoreUnavailable",
    "RedisPolicyStore",
    "UpdateBatch",
    "Write",
    "WriteMode",
]

log = logging.getLogger(__name__)

# KEYS[1] policy hash, KEYS[2] stream, KEYS[3] the key's history stream, KEYS[4] its control hash.
# ARGV: version, record JSON, stream maxlen, campaign, agent, updated_at, channel, pub/sub payload,
# history maxlen, mode, lineage.
# Mode 'learner' (the job) is refused while an operator holds the key: {3, version} while the
# learners' params do not descend from the latest rolled-back or promoted version ('adopt' above
# the write's lineage, the version the learners last adopted: the hold stays, so a job restored
# from a checkpoint taken before its adoption adopts again), {2, version} while a version is pinned.
# Modes 'rollback', 'promote' and 'pin' (an operator, the rollout controller) write past those
# holds and set theirs; 'republish' writes past them and sets none.
# Returns {1, stream id} when written, {0, stored version} when the stored version is not lower.
PUBLISH_LUA = """
local mode = ARGV[10]
if mode == 'learner' then
  local adopt = redis.call('HGET', KEYS[4], 'adopt')
  if adopt and tonumber(adopt) > tonumber(ARGV[11]) then
    return {3, adopt}
  end
  local pinned = redis.call('HGET', KEYS[4], 'pinned')
  if pinned then
    return {2, pinned}
  end
end
local stored = redis.call('HGET', KEYS[1], 'version')
if stored and tonumber(stored) >= tonumber(ARGV[1]) then
  return {0, stored}
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'record', ARGV[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[9], '*',
  'version', ARGV[1], 'updated_at', ARGV[6], 'record', ARGV[2])
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*',
  'campaign', ARGV[4], 'agent', ARGV[5], 'version', ARGV[1], 'updated_at', ARGV[6])
redis.call('PUBLISH', ARGV[7], ARGV[8])
if mode == 'rollback' or mode == 'promote' then
  redis.call('HSET', KEYS[4], 'adopt', ARGV[1])
elseif mode == 'pin' then
  redis.call('HSET', KEYS[4], 'pinned', ARGV[1])
end
return {1, id}
"""

# KEYS[1] the key's rollout hash, KEYS[2] the notification stream.
# ARGV: candidate record JSON ("" clears the rollout), share, shadow, stream maxlen, campaign,
# agent, candidate version, updated_at, channel, pub/sub payload, expected candidate version ("":
# any). Returns 0, changing nothing, when the running rollout's candidate is not the expected one.
ROLLOUT_LUA = """
if ARGV[11] ~= '' and redis.call('HGET', KEYS[1], 'version') ~= ARGV[11] then
  return 0
end
if ARGV[1] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'candidate', ARGV[1], 'share', ARGV[2], 'shadow', ARGV[3], 'version', ARGV[7])
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'campaign', ARGV[5], 'agent', ARGV[6],
  'version', ARGV[7], 'updated_at', ARGV[8], 'kind', 'rollout')
redis.call('PUBLISH', ARGV[9], ARGV[10])
return 1
"""

# KEYS[1] a control hash; ARGV: field, version. Deletes the field if it still holds that version
# (an adoption acknowledged, a pin lifted) and returns 1, else 0.
RELEASE_LUA = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


# KEYS[1] a policy hash under the prefix: reads its version, so an ACL user without access to the
# prefix's keys is refused here, at start, rather than at its first publish.
ACCESS_CHECK_LUA = """
return redis.call('HGET', KEYS[1], 'version')
"""


class WriteMode(enum.Enum):
    """Who writes: the job's learners (refused while an operator holds the key), or an operator
    rolling a key back (the learners must adopt the version) or pinning it (they are refused)."""

    LEARNER = "learner"
    ROLLBACK = "rollback"
    PIN = "pin"
    PROMOTE = "promote"  # a candidate's params become the control: the learners adopt them
    REPUBLISH = "republish"  # the control's own params again (a candidate rolled back): no hold


@dataclass(frozen=True, slots=True)
class Write:
    """What a write did: ``status`` is ``written``, ``stale`` (the stored version is not lower),
    ``pinned`` or ``adopt`` (an operator holds the key, at version ``held``)."""

    status: str
    held: int = 0

    @property
    def written(self) -> bool:
        return self.status == "written"


_WRITE_STATUS = {0: "stale", 1: "written", 2: "pinned", 3: "adopt"}


class PolicyStoreError(Exception):
    """Base class of the store's errors."""


class PolicyStoreUnavailable(PolicyStoreError, ConnectionError):
    """Redis cannot be reached (refused, timed out, loading): retry later."""


class PolicyStoreAuthError(PolicyStoreError, PermissionError):
    """Redis refused the credentials or the ACL user lacks a permission: a configuration error."""


@dataclass(frozen=True, slots=True)
class UpdateBatch:
    """Stream entries read after some ID: parsed notifications and the ID to continue from.

    ``last_id`` is the ID of the last entry read (malformed ones included), or ``None`` if none.
    """

    entries: list[tuple[str, Notification]] = field(default_factory=list)
    last_id: str | None = None
    read: int = 0


def _where(url: str) -> str:
    """The URL without credentials, for error messages."""
    parts = urlsplit(url)
    host = parts.hostname or parts.path or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


class RedisPolicyStore:
    """Policy records in Redis, one per (campaign, agent), written atomically and monotonically.

    Parameters
    ----------
    url
        ``redis://host:port/db`` (``rediss://`` for TLS; credentials in the URL are accepted).
    key_prefix
        Prefix of every key and of the channel (see :class:`state.keys.KeyLayout`).
    password, username
        Redis ``AUTH``: a password alone, or an ACL user and its password.
    tls, tls_ca_certs
        Connect with TLS (``redis://`` is then treated as ``rediss://``), verifying the server
        against the CA bundle at ``tls_ca_certs`` (the system's when ``None``).
    tls_certfile, tls_keyfile
        A client certificate and its key, for a server that authenticates clients by certificate.
    tls_check_hostname
        The server certificate must name the URL's host (on by default; a certificate issued to
        another host is refused).
    socket_timeout_s
        Connect and read timeout: an unreachable Redis fails a call within it instead of hanging.
    stream_maxlen
        Approximate length the notification stream is trimmed to.
    history_len
        Approximate number of versions each key's history stream keeps, with their params.
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "adloop",
        password: str | None = None,
        username: str | None = None,
        tls: bool = False,
        tls_ca_certs: str | None = None,
        tls_certfile: str | None = None,
        tls_keyfile: str | None = None,
        tls_check_hostname: bool = True,
        socket_timeout_s: float = 1.0,
        stream_maxlen: int = 100_000,
        history_len: int = 1_000,
    ) -> None:
        if not isinstance(url, str) or urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ValueError(
                f"RedisPolicyStore: url must be redis://, rediss:// or unix://; got {_where(str(url))!r}"
            )
        if not socket_timeout_s > 0:
            raise ValueError(f"RedisPolicyStore: socket_timeout_s must be > 0; got {socket_timeout_s!r}")
        if not (isinstance(stream_maxlen, int) and stream_maxlen >= 1):
            raise ValueError(f"RedisPolicyStore: stream_maxlen must be an int >= 1; got {stream_maxlen!r}")
        if not (isinstance(history_len, int) and history_len >= 1):
            raise ValueError(f"RedisPolicyStore: history_len must be an int >= 1; got {history_len!r}")
        scheme = urlsplit(url).scheme
        if tls and scheme == "unix":
            raise ValueError("RedisPolicyStore: tls=True needs a redis:// or rediss:// url; got unix://")
        if tls and scheme == "redis":
            url = "rediss" + url[len("redis") :]
        options: dict[str, Any] = {
            "socket_timeout": socket_timeout_s,
            "socket_connect_timeout": socket_timeout_s,
            "socket_keepalive": True,
        }
        if password is not None:
            options["password"] = password
        if username is not None:
            options["username"] = username
        if (tls_certfile is None) != (tls_keyfile is None):
            raise ValueError("RedisPolicyStore: tls_certfile and tls_keyfile go together; got one of them")
        if tls or scheme == "rediss":
            options.update(
                ssl_ca_certs=tls_ca_certs,
                ssl_cert_reqs="required",
                ssl_check_hostname=tls_check_hostname,
                ssl_certfile=tls_certfile,
                ssl_keyfile=tls_keyfile,
            )
        self.keys = KeyLayout(key_prefix)
        self.where = _where(url)
        self.socket_timeout_s = socket_timeout_s
        self.stream_maxlen = stream_maxlen
        self.history_len = history_len
        self.redis: redis.Redis = redis.Redis.from_url(url, **options)
        # Registered once; each call is an EVALSHA, re-loaded on NOSCRIPT (a restarted Redis).
        self._publish_script = self.redis.register_script(PUBLISH_LUA)
        self._release_script = self.redis.register_script(RELEASE_LUA)
        self._rollout_script = self.redis.register_script(ROLLOUT_LUA)

    # -- writing --------------------------------------------------------------------------------

    def publish(self, record: PolicyRecord) -> bool:
        """Write ``record`` if its version is higher than the stored one; notify in the same step.

        Returns ``True`` if written (one stream entry and one pub/sub message were emitted),
        ``False`` if ignored because the stored version is equal or higher, or because an operator
        holds the key (:meth:`write` tells which).
        Raises :class:`PolicyStoreUnavailable` when Redis cannot be reached within the timeout.
        """
        return self.write(record).written

    def write(self, record: PolicyRecord, mode: WriteMode = WriteMode.LEARNER, *, lineage: int = 0) -> Write:
        """Write ``record`` as :meth:`publish` does, as ``mode``; it also joins the key's history.
        ``lineage``: the rolled-back or promoted version the learners' params descend from (0:
        none); a learner write is refused while the key's ``adopt`` hold names a later one."""
        if not isinstance(record, PolicyRecord):
            raise ValueError(
                f"RedisPolicyStore.publish: expected a PolicyRecord; got {type(record).__name__}"
            )
        note = Notification.of(record)
        campaign_id, agent = record.key
        args: list[str | int] = [
            record.version,
            encode_record(record),
            self.stream_maxlen,
            campaign_id,
            agent,
            record.updated_at_ms,
            self.keys.channel,
            note.to_json(),
            self.history_len,
            mode.value,
            lineage,
        ]
        keys = [
            self.keys.policy(campaign_id, agent),
            self.keys.stream,
            self.keys.history(campaign_id, agent),
            self.keys.control(campaign_id, agent),
        ]
        with self._errors("publish"):
            code, detail = self._publish_script(keys=keys, args=args)
        status = _WRITE_STATUS[int(code)]
        return Write(status, 0 if status == "written" else int(detail))

    def holds(self, campaign_id: str, agent: str) -> dict[str, int]:
        """An operator's holds on (campaign, agent): ``pinned`` and ``adopt`` versions, when set."""
        with self._errors("holds"):
            raw: Any = self.redis.hgetall(self.keys.control(campaign_id, agent))
        return {_id(k): int(v) for k, v in raw.items() if _id(k) in ("pinned", "adopt")}

    def release(self, campaign_id: str, agent: str, hold: str, version: int) -> bool:
        """Lift the hold ``hold`` (``adopt``: the learners took over the version; ``pinned``: the
        pin) if it still names ``version``; returns whether it did."""
        if hold not in ("adopt", "pinned"):
            raise ValueError(f"RedisPolicyStore.release: hold must be 'adopt' or 'pinned'; got {hold!r}")
        with self._errors("release"):
            done: Any = self._release_script(
                keys=[self.keys.control(campaign_id, agent)], args=[hold, str(version)]
            )
        return bool(done)

    def history(self, campaign_id: str, agent: str, *, count: int | None = None) -> list[PolicyRecord]:
        """The versions of (campaign, agent) kept in Redis, newest first (``count`` at most);
        an entry that does not decode is logged and left out."""
        with self._errors("history"):
            raw: Any = self.redis.xrevrange(self.keys.history(campaign_id, agent), count=count)
        out = []
        for entry_id, fields in raw:
            try:
                out.append(decode_record(fields.get(b"record", fields.get("record", b""))))
            except ValueError as exc:
                log.warning("RedisPolicyStore: skipping history entry %s: %s", _id(entry_id), exc)
        return out

    def set_rollout(self, rollout: Rollout, *, expect: int | None = None) -> bool:
        """Start or change the rollout of the candidate's key, and notify subscribers; with
        ``expect``, only if the running rollout's candidate has that version (returns whether)."""
        return self._write_rollout(rollout.candidate.key, rollout, expect)

    def clear_rollout(self, campaign_id: str, agent: str, *, expect: int | None = None) -> bool:
        """End the key's rollout (all its requests go to the control), and notify subscribers;
        with ``expect``, only if the running rollout's candidate has that version."""
        return self._write_rollout((campaign_id, agent), None, expect)

    def _write_rollout(self, key: PolicyKey, rollout: Rollout | None, expect: int | None) -> bool:
        campaign_id, agent = key
        now = int(time.time() * 1000)
        version = rollout.candidate.version if rollout is not None else 0
        note = Notification(campaign_id, agent, version, now, "rollout")
        args: list[str | int | float] = [
            encode_record(rollout.candidate) if rollout is not None else "",
            repr(float(rollout.share)) if rollout is not None else "0",
            "1" if rollout is not None and rollout.shadow else "0",
            self.stream_maxlen,
            campaign_id,
            agent,
            version,
            now,
            self.keys.channel,
            note.to_json(),
            "" if expect is None else str(expect),
        ]
        with self._errors("rollout"):
            done: Any = self._rollout_script(
                keys=[self.keys.rollout(campaign_id, agent), self.keys.stream], args=args
            )
        return bool(done)

    def get_rollout(self, campaign_id: str, agent: str) -> Rollout | None:
        """The key's rollout, or ``None``; a corrupt one is a ValueError."""
        with self._errors("get_rollout"):
            raw: Any = self.redis.hgetall(self.keys.rollout(campaign_id, agent))
        return _rollout(raw) if raw else None

    def load_rollouts(self, campaigns: Sequence[str] | None = None) -> list[Rollout]:
        """Every rollout (of ``campaigns`` only, if given); corrupt ones are logged and skipped."""
        patterns = (
            [self.keys.rollout_pattern()]
            if campaigns is None
            else [self.keys.rollout_pattern(c) for c in campaigns]
        )
        out: list[Rollout] = []
        with self._errors("load_rollouts"):
            names = [
                _id(n) for p in patterns for n in self.redis.scan_iter(match=p, count=1000, _type="hash")
            ]
            pipe = self.redis.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(name)
            raws = pipe.execute()
        wanted = None if campaigns is None else set(campaigns)
        for name, raw in zip(names, raws, strict=True):
            try:
                rollout = _rollout(raw)
            except ValueError as exc:
                log.warning("RedisPolicyStore: skipping rollout %r: %s", name, exc)
                continue
            if wanted is None or rollout.candidate.campaign_id in wanted:
                out.append(rollout)
        return out

    # -- reading --------------------------------------------------------------------------------

    def get(self, campaign_id: str, agent: str) -> PolicyRecord | None:
        """The stored record of (campaign, agent), or ``None``; a corrupt record is a ValueError."""
        return self.get_many([(campaign_id, agent)]).get((campaign_id, agent))

    def get_many(
        self, keys: Iterable[PolicyKey], *, skip_invalid: bool = False
    ) -> dict[PolicyKey, PolicyRecord]:
        """Records of several (campaign, agent) keys in one round trip; missing keys are left out.

        A record that does not decode is a ValueError, or is logged and left out if ``skip_invalid``.
        """
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        with self._errors("get_many"):
            pipe = self.redis.pipeline(transaction=False)
            for campaign_id, agent in wanted:
                pipe.hget(self.keys.policy(campaign_id, agent), "record")
            raws = pipe.execute()
        out: dict[PolicyKey, PolicyRecord] = {}
        for key, raw in zip(wanted, raws, strict=True):
            if raw is None:
                continue
            try:
                out[key] = decode_record(raw)
            except ValueError as exc:
                if not skip_invalid:
                    raise ValueError(f"RedisPolicyStore.get_many: policy {key}: {exc}") from None
                log.warning("RedisPolicyStore: skipping policy %s: %s", key, exc)
        return out

    def load_all(self, campaigns: Sequence[str] | None = None) -> list[PolicyRecord]:
        """Every stored record (of ``campaigns`` only, if given), by SCAN; corrupt ones are skipped."""
        patterns = (
            [self.keys.scan_pattern()]
            if campaigns is None
            else [self.keys.scan_pattern(c) for c in campaigns]
        )
        names: list[str] = []
        with self._errors("load_all"):
            for pattern in patterns:
                names.extend(_id(n) for n in self.redis.scan_iter(match=pattern, count=1000, _type="hash"))
            pipe = self.redis.pipeline(transaction=False)
            for name in names:
                pipe.hget(name, "record")
            raws = pipe.execute()
        wanted = None if campaigns is None else set(campaigns)
        records: list[PolicyRecord] = []
        for name, raw in zip(names, raws, strict=True):
            if raw is None:
                continue
            try:
                record = decode_record(raw)
            except ValueError as exc:
                log.warning("RedisPolicyStore: skipping %r: %s", name, exc)
                continue
            if wanted is None or record.campaign_id in wanted:
                records.append(record)
        return records

    def read_updates(self, after_id: str, *, count: int = 1000) -> UpdateBatch:
        """Up to ``count`` stream entries after ``after_id`` (``"0-0"`` for all); never blocks."""
        with self._errors("read_updates"):
            reply: Any = self.redis.xread({self.keys.stream: after_id}, count=count)
        if not reply:
            return UpdateBatch()
        _, raw_entries = reply[0]
        entries: list[tuple[str, Notification]] = []
        for raw_id, fields in raw_entries:
            entry_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
            try:
                entries.append((entry_id, Notification.from_fields(fields)))
            except ValueError as exc:
                log.warning("RedisPolicyStore: skipping stream entry %s: %s", entry_id, exc)
        last = raw_entries[-1][0]
        return UpdateBatch(entries, last.decode() if isinstance(last, bytes) else last, len(raw_entries))

    def stream_bounds(self) -> tuple[str, str] | None:
        """IDs of the first and last stream entries, or ``None`` if the stream is empty or missing."""
        with self._errors("stream_bounds"):
            first: Any = self.redis.xrange(self.keys.stream, count=1)
            last: Any = self.redis.xrevrange(self.keys.stream, count=1)
        if not first or not last:
            return None
        return _id(first[0][0]), _id(last[0][0])

    def pubsub(self) -> PubSub:
        """A new pub/sub object on this store's connection settings (not yet subscribed)."""
        return self.redis.pubsub()

    # -- housekeeping ---------------------------------------------------------------------------

    def ping(self) -> None:
        """Raise :class:`PolicyStoreUnavailable` / :class:`PolicyStoreAuthError` unless Redis answers."""
        with self._errors("ping"):
            self.redis.ping()

    def check_access(self) -> None:
        """Raise :class:`PolicyStoreAuthError` unless this user may run the publish script on the
        prefix's keys (:class:`PolicyStoreUnavailable` when Redis does not answer); writes nothing."""
        with self._errors("check_access"):
            self.redis.ping()
            self.redis.script_load(PUBLISH_LUA)
            self.redis.script_load(RELEASE_LUA)
            self.redis.script_load(ROLLOUT_LUA)
            self.redis.register_script(ACCESS_CHECK_LUA)(
                keys=[self.keys.policy("access-check", "access-check")]
            )

    def purge(self) -> int:
        """Delete every policy and the stream under this prefix (tests, tear-down); returns the count."""
        with self._errors("purge"):
            names = [
                _id(n)
                for pattern in self.keys.owned_patterns()
                for n in self.redis.scan_iter(match=pattern, count=1000)
            ]
            deleted: Any = self.redis.delete(*names, self.keys.stream)
            return int(deleted)

    def close(self) -> None:
        """Close the connection pool."""
        self.redis.close()

    def __enter__(self) -> RedisPolicyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RedisPolicyStore({self.where!r}, key_prefix={self.keys.prefix!r})"

    @contextmanager
    def _errors(self, op: str) -> Iterator[None]:
        """Turn redis-py's connection and permission errors into this module's, naming the step."""
        try:
            yield
        except (
            redis.AuthenticationError,
            redis.exceptions.AuthorizationError,
            redis.exceptions.NoPermissionError,
        ) as exc:
            raise PolicyStoreAuthError(
                f"RedisPolicyStore.{op}: Redis at {self.where} refused the credentials or a permission "
                f"(prefix {self.keys.prefix!r}): {exc}"
            ) from exc
        except (
            redis.exceptions.ReadOnlyError,
            redis.exceptions.OutOfMemoryError,
            redis.exceptions.BusyLoadingError,
        ) as exc:
            # A replica after a failover, a full server (maxmemory with noeviction), one loading its
            # data: Redis answers but cannot take the write now. Held and retried, like an outage.
            raise PolicyStoreUnavailable(
                f"RedisPolicyStore.{op}: Redis at {self.where} cannot take it now: {exc}"
            ) from exc
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if _certificate_refused(exc):
                raise PolicyStoreAuthError(
                    f"RedisPolicyStore.{op}: the TLS certificate of Redis at {self.where} was refused "
                    f"(untrusted, or issued for another host): {exc}"
                ) from exc
            raise PolicyStoreUnavailable(
                f"RedisPolicyStore.{op}: Redis at {self.where} unavailable within "
                f"{self.socket_timeout_s} s: {exc}"
            ) from exc


def _certificate_refused(exc: BaseException) -> bool:
    """Whether a connection error is a TLS verification failure (a configuration error, not an
    outage): redis-py keeps the ssl error as the context or in the message."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _rollout(raw: dict) -> Rollout:
    """A rollout hash's fields (bytes or str) as a :class:`Rollout`; ValueError when malformed."""
    fields = {_id(k): _id(v) for k, v in raw.items()}
    if "candidate" not in fields:
        raise ValueError(f"rollout without a candidate: fields {sorted(fields)}")
    try:
        share = float(fields.get("share", "0"))
    except ValueError:
        raise ValueError(f"rollout share is not a number: {fields.get('share')!r}") from None
    return Rollout(decode_record(fields["candidate"]), share, fields.get("shadow") == "1")


def _id(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
