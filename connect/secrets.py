"""Secrets in the config: references to environment variables or files, resolved where they are used.

A secret is never written in ``adloop.yaml`` itself. The file names where it lives:

- ``${env:NAME}``: the value of the environment variable ``NAME``;
- ``${file:/path}``: the content of a file (one trailing newline dropped), e.g. a mounted secret.

References may sit inside a longer value, as in a JAAS line:
``... username="adloop-job" password="${env:ADLOOP_KAFKA_PASSWORD}";``.

The config objects keep the references, so a dump of the config shows where a secret comes from,
never the secret. :func:`resolve` turns them into values at the point of use (the job's table
options, a client's settings), and :func:`mask` hides whatever a message might carry.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

__all__ = ["MASK", "SecretError", "is_reference", "is_sensitive", "mask", "references", "resolve"]

MASK = "******"

_REFERENCE = re.compile(r"\$\{(env|file):([^}]+)\}")

# Key fragments that mark a value as secret (Kafka's and Redis's password and key settings, JAAS
# lines that hold a password, tokens).
_SENSITIVE = ("password", "secret", "jaas.config", "token", "ssl.key.pem", "keystore.key", "credential")


class SecretError(ValueError):
    """A secret reference could not be resolved, or a secret was written in plain text."""


def is_sensitive(key: str) -> bool:
    """Whether a setting named ``key`` holds a secret.

    >>> is_sensitive("sasl.jaas.config"), is_sensitive("ssl.keystore.password"), is_sensitive("acks")
    (True, True, False)
    """
    lowered = key.lower()
    return any(fragment in lowered for fragment in _SENSITIVE)


def references(value: str) -> list[str]:
    """The references in ``value``, as written.

    >>> references('user="a" password="${env:PW}";')
    ['${env:PW}']
    """
    return [m.group(0) for m in _REFERENCE.finditer(value)]


def is_reference(value: str) -> bool:
    """Whether ``value`` takes its secret part from a reference (a whole value or inside it)."""
    return bool(_REFERENCE.search(value))


def check_not_plain(key: str, value: object) -> None:
    """Refuse a secret written in plain text under a sensitive ``key``, naming the key only.

    >>> check_not_plain("kafka.properties.ssl.key.password", "${file:/run/secrets/key-pw}")
    >>> try:
    ...     check_not_plain("redis.password", "hunter2")
    ... except SecretError as e:
    ...     print(e)  # doctest: +ELLIPSIS
    config key 'redis.password': expected a reference ... found a value in plain text (not shown)
    """
    if value in (None, ""):
        return
    if not isinstance(value, str) or not is_reference(value):
        raise SecretError(
            f"config key {key!r}: expected a reference ${{env:NAME}} or ${{file:PATH}} to the secret, "
            "found a value in plain text (not shown)"
        )


def resolve(value: str, key: str, env: Mapping[str, str] | None = None) -> str:
    """``value`` with every reference replaced by its secret; errors name the key and the reference.

    >>> resolve('password="${env:PW}";', "sasl.jaas.config", env={"PW": "s3cret"})
    'password="s3cret";'
    >>> try:
    ...     resolve("${env:MISSING}", "redis.password", env={})
    ... except SecretError as e:
    ...     print(e)
    config key 'redis.password': environment variable 'MISSING' (from ${env:MISSING}) is not set
    """
    environment = os.environ if env is None else env

    def one(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2).strip()
        if kind == "env":
            if name not in environment:
                raise SecretError(
                    f"config key {key!r}: environment variable {name!r} (from {match.group(0)}) is not set"
                )
            return environment[name]
        path = Path(name)
        try:
            text = path.read_text()
        except OSError as exc:
            raise SecretError(
                f"config key {key!r}: cannot read the secret file {name!r} (from {match.group(0)}): "
                f"{exc.strerror or exc}"
            ) from None
        return text[:-1] if text.endswith("\n") else text

    return _REFERENCE.sub(one, value)


def mask(text: str, secrets: list[str] | tuple[str, ...]) -> str:
    """``text`` with every one of ``secrets`` (non-empty ones) replaced by :data:`MASK`.

    >>> mask("login failed for password s3cret", ["s3cret", ""])
    'login failed for password ******'
    """
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
