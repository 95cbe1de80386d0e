"""Alembic, driven from Python: what `optiqoflow migrate` and the tests call.

There is no alembic.ini: the configuration lives in pyproject.toml (`[tool.alembic]`)
for the `alembic` command in a checkout, and is built here for the installed package.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from optiqoflow_db import migrations_dir

BASELINE = "0001_baseline"


class MigrationError(Exception):
    """A database this release cannot migrate as it is; the message says what to do."""


def sqlalchemy_url(dsn: str) -> str:
    """A libpq URL (postgresql://...) as SQLAlchemy's psycopg 3 dialect wants it."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix) :]
    if "=" in dsn:  # key=value conninfo: hand it over untouched
        from urllib.parse import quote

        return "postgresql+psycopg:///?" + "&".join(
            f"{k}={quote(v)}" for k, v in (kv.split("=", 1) for kv in dsn.split())
        )
    raise ValueError(f"not a PostgreSQL connection string: {dsn!r}")


def alembic_config(dsn: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["dsn"] = dsn
    return cfg


def upgrade(dsn: str, revision: str = "head") -> None:
    """Upgrade to `revision`; a database of the pre-release history is adopted first."""
    adopt_pre_release(dsn)
    command.upgrade(alembic_config(dsn), revision)


def _pre_release() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((migrations_dir() / "pre_release.json").read_text())
    return data


# our functions as they are in the database: signature -> md5 of the body
_LIVE_FUNCTIONS = """
SELECT n.nspname || '.' || p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')',
       md5(p.prosrc)
  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname IN ('optiqoflow', 'tenants', 'public')
   AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
"""


def adopt_pre_release(dsn: str) -> bool:
    """Stamp a database of the pre-release history to the baseline, when it is at that
    history's head and its functions are exactly that head's; then apply the baseline's
    function files (their comments were reworded; the code is the same). A database at
    another pre-release revision, or whose functions were changed by hand, raises
    MigrationError with what to do. True when the database was adopted."""
    history = _pre_release()
    with psycopg.connect(dsn) as conn:
        table = conn.execute("SELECT to_regclass('public.alembic_version')").fetchone()
        if table is None or table[0] is None:
            return False
        found = [r[0] for r in conn.execute("SELECT version_num FROM public.alembic_version")]
        if len(found) != 1 or found[0] not in history["revisions"]:
            return False  # a release revision (or none): Alembic's own business
        (at,) = found
        if at != history["head"]:
            raise MigrationError(
                f"the database is at pre-release revision {at}: upgrade it to "
                f"{history['head']} with the last pre-release code (git checkout 2c53348 && "
                "optiqoflow migrate), then run this migrate again; or recreate the database"
            )
        live = dict(conn.execute(_LIVE_FUNCTIONS).fetchall())
        expected: dict[str, str] = history["functions"]
        differing = sorted(k for k in expected.keys() | live.keys() if live.get(k) != expected.get(k))
        if differing:
            shown = ", ".join(differing[:3]) + (" ..." if len(differing) > 3 else "")
            raise MigrationError(
                f"the database is at {at} but {len(differing)} of its functions differ from "
                f"that revision's ({shown}): restore them (or recreate the database) and "
                "run this migrate again"
            )
        from optiqoflow_db.migrations.freeze import frozen_files, ordered

        files = frozen_files(BASELINE)
        for key in ordered(files):
            conn.execute(files[key].read_text())  # type: ignore[call-overload]
        conn.execute("UPDATE public.alembic_version SET version_num = %s", (BASELINE,))
    return True


def downgrade(dsn: str, revision: str) -> None:
    command.downgrade(alembic_config(dsn), revision)


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config("postgresql://unused"))
    head = script.get_current_head()
    assert head is not None
    return head
