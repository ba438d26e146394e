"""The freshness bench's load generator renders events from templates: they must still be valid."""

from __future__ import annotations

import json

from bench.bench_feedback import LoadGenerator
from contract.events import CLICKS, IMPRESSIONS, rejection_reason


def test_rendered_impressions_and_clicks_keep_the_contract():
    gen = LoadGenerator("127.0.0.1:1", "t.", rate=1.0)  # the producer connects only on send
    ids = set()
    for i in range(50):
        imp_id, raw = gen._impression(f"c{i % 3}", "cr1", 1_700_000_000_000 + i)
        impression = json.loads(raw)
        assert rejection_reason(IMPRESSIONS, impression) is None
        assert impression["impression_id"] == imp_id
        assert impression["decisions"][0]["action"] == impression["creative_id"] == "cr1"
        click = json.loads(LoadGenerator._click(imp_id, impression["ts"] + 5))
        assert rejection_reason(CLICKS, click) is None
        assert click["impression_id"] == imp_id
        ids.add(imp_id)
    assert len(ids) == 50
