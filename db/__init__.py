"""The SQL side of optiqoflow: `functions/` (one file per SQL function, the only place a
function is edited) and `migrations/` (Alembic: the baseline, later revisions, the frozen
copies of the function files and the helpers that make them).

In a checkout this is the folder `db/`; in a wheel it is the package `optiqoflow_db`.
Nothing here imports the receiver, the command line or the simulator.
"""

from __future__ import annotations

import os
from pathlib import Path


def db_root() -> Path:
    """This folder, or $OPTIQOFLOW_DB_DIR when set (the freeze tool's tests use a copy)."""
    override = os.environ.get("OPTIQOFLOW_DB_DIR")
    return Path(override) if override else Path(__file__).resolve().parent


def functions_dir() -> Path:
    return db_root() / "functions"


def migrations_dir() -> Path:
    return db_root() / "migrations"
