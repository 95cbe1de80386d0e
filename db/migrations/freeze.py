"""Frozen copies of the SQL function files, and the command that makes them.

`db/functions/<schema>/<name>.sql` is the only place a function is edited. A migration
never reads those live files: `optiqoflow freeze -m "why"` copies every file that
differs from its latest frozen copy into `db/migrations/frozen/<revision>/`, and writes
an Alembic revision that applies exactly those copies (the sqitch "rework" idea). So
history stays reproducible: upgrading an old database replays the functions as they
were at each step, and a downgrade re-applies the previous copies (or drops a function
that did not exist before).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from optiqoflow_db import functions_dir, migrations_dir


def frozen_root() -> Path:
    return migrations_dir() / "frozen"


def _revision_order() -> list[str]:
    """Revision ids from base to head (a linear history)."""
    from alembic.script import ScriptDirectory
    from optiqoflow_db.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config("postgresql://unused"))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def source_files() -> dict[str, Path]:
    """`schema/name.sql` -> file, for every function source."""
    root = functions_dir()
    return {p.relative_to(root).as_posix(): p for p in sorted(root.glob("*/*.sql"))}


def frozen_files(revision: str) -> dict[str, Path]:
    root = frozen_root() / revision
    return {p.relative_to(root).as_posix(): p for p in sorted(root.glob("*/*.sql"))}


def latest_frozen(before: str | None = None) -> dict[str, Path]:
    """The newest frozen copy of each function, in revisions up to (not including) `before`."""
    latest: dict[str, Path] = {}
    for rev in _revision_order():
        if rev == before:
            break
        latest.update(frozen_files(rev))
    return latest


def run_sql(op: Any, text: str) -> None:
    # the raw psycopg connection: no SQLAlchemy bind-parameter parsing of `:=` or `%`
    op.get_bind().connection.driver_connection.execute(text)


def apply_revision(op: Any, revision: str) -> None:
    """Apply the frozen function copies of `revision` (helpers, `_` first, then the rest)."""
    files = frozen_files(revision)
    for key in ordered(files):
        run_sql(op, files[key].read_text())


def ordered(files: dict[str, Path]) -> list[str]:
    """The order function files are applied in: a file after the files whose functions
    it names (a SQL-standard body is bound when it is created, so what it calls must
    exist), else helpers (`_`) first, then by name. Mutual references (PL/pgSQL bodies
    are bound at run time) keep the first of those orders that applies."""
    keys = sorted(files, key=lambda k: (not Path(k).name.startswith("_"), k))
    texts = {k: files[k].read_text() for k in keys}
    calls = {k: f"{k.removesuffix('.sql').replace('/', '.')}(" for k in keys}
    done: list[str] = []
    seen: set[str] = set()

    def visit(key: str) -> None:
        if key in seen:
            return
        seen.add(key)
        for other in keys:
            if other != key and calls[other] in texts[key]:
                visit(other)
        done.append(key)

    for key in keys:
        visit(key)
    return done


def own_everything(op: Any) -> None:
    """The owner role owns every object of ours (db/migrations/ownership.sql): the last
    step of every revision from 0002 on, whatever it created."""
    run_sql(op, (migrations_dir() / "ownership.sql").read_text())


def revert_revision(op: Any, revision: str) -> None:
    """Undo `revision`: re-apply each function's previous copy, or drop it if it had none."""
    previous = latest_frozen(before=revision)
    for key in frozen_files(revision):
        if key in previous:
            run_sql(op, previous[key].read_text())
        else:
            schema, name = key[: -len(".sql")].split("/")
            run_sql(op, f'DROP FUNCTION IF EXISTS "{schema}"."{name}" CASCADE')


def changed_sources() -> dict[str, Path]:
    latest = latest_frozen()
    return {
        key: path
        for key, path in source_files().items()
        if key not in latest or latest[key].read_bytes() != path.read_bytes()
    }


_TEMPLATE = '''"""{message}

Frozen function copies: {files}

Revision ID: {revision}
Revises: {down}
Create Date: {date}
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
'''


def freeze(message: str) -> str | None:
    """Freeze every changed function file into a new revision; return its id (None if nothing changed)."""
    changed = changed_sources()
    if not changed:
        return None
    order = _revision_order()
    down = order[-1] if order else None
    number = len(order) + 1
    # alembic_version.version_num is varchar(32): "NNNN_" and at most 27 more
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower())[:27].strip("_") or "functions"
    revision = f"{number:04d}_{slug}"
    target = frozen_root() / revision
    for key, path in changed.items():
        dest = target / key
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(path.read_bytes())
    (migrations_dir() / "versions" / f"{revision}.py").write_text(
        _TEMPLATE.format(
            message=message,
            files=", ".join(sorted(changed)),
            revision=revision,
            down=down,
            date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
    )
    return revision
