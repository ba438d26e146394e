"""The column lists shared by SQL, Java and Python come from sql/schema.py; these fail when a copy
has drifted from it."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from learners.batch import SCALAR_FIELDS, ArmStats
from sql.schema import ARM_FIELDS, columns, java_source

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS_JAVA = ROOT / "udf" / "src" / "main" / "java" / "adloop" / "udf" / "Schemas.java"


def test_the_java_functions_schemas_are_rendered_from_sql_schema():
    # Regenerate with: python -m sql.schema > udf/src/main/java/adloop/udf/Schemas.java
    assert SCHEMAS_JAVA.read_text() == java_source()


def test_the_java_functions_spell_no_column_list_of_their_own():
    # Their input and output types come from Schemas.java; a ROW<...> literal elsewhere is a copy.
    for source in (ROOT / "udf" / "src" / "main" / "java" / "adloop" / "udf").glob("*.java"):
        if source.name in ("Schemas.java",):
            continue
        text = source.read_text()
        for name in ("win_price DOUBLE", "reward_sq_sum DOUBLE", "conv_value DOUBLE, credit DOUBLE"):
            assert name not in text, f"{source.name} spells a shared column list ({name!r})"


def test_the_learners_arm_statistics_are_the_micro_batch_arm_fields():
    arm_fields = list(columns(ARM_FIELDS))
    assert arm_fields[:2] == ["state", "arm"]
    assert tuple(arm_fields[2 : 2 + len(SCALAR_FIELDS)]) == SCALAR_FIELDS
    assert set(arm_fields) == {f.name for f in fields(ArmStats)}
