"""The serving protocol's JSON schemas (``contract/schemas/policy.*.v1.json``): what the job
publishes to Redis, for serving nodes in any language.

>>> params_errors({"learner": "UCB", "v": 1, "version": 3, "t": None, "config": {}, "arms": ["a"],
...                "stats": [[10, 2]]})
[]
>>> params_errors({"learner": "UCB", "v": 1, "version": 3, "t": None, "config": {}})[0][:45]
"{'learner': 'UCB', 'v': 1, 'version': 3, 't':"
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

__all__ = ["notification_errors", "params_errors", "record_errors"]

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
SCHEMAS = ("policy.params.v1.json", "policy.record.v1.json", "policy.notification.v1.json")


@cache
def _registry() -> Registry:
    resources = []
    for name in SCHEMAS:
        doc = json.loads((SCHEMA_DIR / name).read_text())
        resources.append((doc["$id"], Resource.from_contents(doc)))
    return Registry().with_resources(resources)


@cache
def _validator(schema_id: str) -> Draft202012Validator:
    registry = _registry()
    return Draft202012Validator(registry.contents(schema_id), registry=registry)


def _errors(schema_id: str, doc: Any) -> list[str]:
    """The validation errors of ``doc``, each prefixed with where it is (``params/arms``)."""
    out = []
    for error in _validator(schema_id).iter_errors(doc):
        where = "/".join(map(str, error.absolute_path))
        out.append(f"{where}: {error.message}" if where else error.message)
    return out


def params_errors(params: Any) -> list[str]:
    """Why a learner's params break ``policy.params/1`` (empty: they conform)."""
    return _errors("urn:adloop:policy.params:1", params)


def record_errors(record: Any) -> list[str]:
    """Why a policy record (the JSON in a policy hash's ``record``) breaks ``policy.record/1``."""
    return _errors("urn:adloop:policy.record:1", record)


def notification_errors(message: Any) -> list[str]:
    """Why a pub/sub notification breaks ``policy.notification/1``."""
    return _errors("urn:adloop:policy.notification:1", message)
