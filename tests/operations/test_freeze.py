"""`optiqoflow freeze`: a changed function file becomes a new revision that applies the
frozen copy, and whose downgrade restores the previous copy."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest
from optiqoflow_db import db_root, migrate
from optiqoflow_db.migrations import freeze

from operations import cli


@pytest.fixture
def db_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "db"
    shutil.copytree(db_root(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("OPTIQOFLOW_DB_DIR", str(copy))
    return copy


def _comment(dsn: str) -> Any:
    with psycopg.connect(dsn) as c:
        row = c.execute(
            "SELECT obj_description('optiqoflow.table_fingerprint(uuid, text)'::regprocedure, 'pg_proc')"
        ).fetchone()
        assert row is not None
        return row[0]


def test_freeze_makes_a_revision_that_upgrades_and_downgrades(
    db_copy: Path, empty_db_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["freeze", "-m", "nothing changed"]) == 0
    assert "matches its latest frozen copy" in capsys.readouterr().out
    before_head = migrate.head_revision()

    source = db_copy / "functions" / "optiqoflow" / "table_fingerprint.sql"
    text = source.read_text()
    assert "for reconciliation.';" in text
    source.write_text(text.replace("for reconciliation.';", "for reconciliation (v2).';"))
    assert set(freeze.changed_sources()) == {"optiqoflow/table_fingerprint.sql"}

    # a long message: the revision id still fits alembic_version.version_num (varchar(32))
    assert cli.main(["freeze", "-m", "fingerprint comment v2, with a message longer than the column"]) == 0
    new_head = migrate.head_revision()
    assert new_head != before_head and "fingerprint_comment_v2" in new_head and len(new_head) <= 32
    frozen = db_copy / "migrations" / "frozen" / new_head / "optiqoflow" / "table_fingerprint.sql"
    assert frozen.read_bytes() == source.read_bytes()
    assert freeze.changed_sources() == {}

    migrate.upgrade(empty_db_dsn)
    assert _comment(empty_db_dsn).endswith("for reconciliation (v2).")
    migrate.downgrade(empty_db_dsn, before_head)
    assert _comment(empty_db_dsn).endswith("for reconciliation.")
