"""README, "Privacy": its psql and shell examples, run as written by a member of
optiqoflow_admin against a database that received the README's first webhook."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.helpers import PASSWORD, apply
from tests.operations.processes import COMMAND, environment
from tests.operations.test_readme_first_webhook import blocks, section
from tests.privacy.helpers import search

TENANT = "5b0c7f9e-1d2e-4f3a-9b8c-7d6e5f4a3b2c"
FIRST = {
    "type": "INSERT", "table": "adhoc_work_orders", "tenant_id": TENANT, "event_id": "first-1",
    "record": {"id": "0f8fad5b-d9cb-469f-a165-70867728950e", "title": "Spill in the lobby",
               "status": "open", "priority": 2, "updated_at": "2026-11-26T10:00:00Z"},
}  # fmt: skip


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_the_privacy_examples_run(
    conn: psycopg.Connection[Any], db_dsn: str, make_role: Any, tmp_path: Path
) -> None:
    text = section("Privacy")
    erase_tenant_sql, erase_record_sql, policies_sql = blocks(text, "sql")
    (commands,) = blocks(text, "sh")
    assert apply(conn, FIRST)["status"] == "applied"
    name = make_role("alice")
    conn.execute(sql.SQL("GRANT optiqoflow_admin TO {}").format(sql.Identifier(name)))
    env = environment(DATABASE_URL=make_conninfo(db_dsn, user=name, password=PASSWORD))

    for script in (erase_tenant_sql, erase_record_sql, policies_sql):
        file = tmp_path / "example.sql"
        file.write_text(script)
        done = subprocess.run(
            [*COMMAND, "psql", "-v", "ON_ERROR_STOP=1", "-f", str(file)],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done
        if script is erase_tenant_sql:
            assert search(conn, TENANT, "Spill in the lobby") == {"optiqoflow.tenant_erasures": 1}

    # the shell examples, with this interpreter's `optiqoflow`
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "optiqoflow").write_text(f'#!/bin/sh\nexec {sys.executable} -m operations.cli "$@"\n')
    (shim / "optiqoflow").chmod(0o755)
    env["PATH"] = f"{shim}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        ["bash", "-e", "-c", commands], env=env, capture_output=True, text=True, timeout=180,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert done.returncode == 0, done
    assert conn.execute(
        "SELECT count(*), count(readmitted_at) FROM optiqoflow.tenant_erasures"
    ).fetchone() == (2, 2)
    assert conn.execute(
        "SELECT column_name, policy FROM optiqoflow.column_policies ORDER BY 1"
    ).fetchall() == [("email", "block"), ("last_name", "hash")]
    # the second erasure of the tenant took its record receipts with it
    assert conn.execute("SELECT count(*) FROM optiqoflow.record_erasures").fetchone() == (0,)
