from __future__ import annotations

from pathlib import Path

from config import app as app_config
from sql.client_init import render

ROOT = Path(__file__).resolve().parents[2]


def test_committed_init_script_is_rendered_from_the_default_config():
    # Regenerate with: python -m sql.client_init > sql/init.sql
    assert (ROOT / "sql" / "init.sql").read_text() == render(app_config.load(env={}))
