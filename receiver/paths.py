"""Where the SQL function sources and the Alembic migrations are, installed or not."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path


def db_root() -> Path:
    """The `db/` folder: $OPTIQOFLOW_DB_DIR when set (tests of the freeze tool use a copy),
    else in a checkout the repo's own, in a wheel the package `optiqoflow_db`."""
    override = os.environ.get("OPTIQOFLOW_DB_DIR")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("optiqoflow_db")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    here = Path(__file__).resolve().parent.parent / "db"
    if here.is_dir():
        return here
    raise RuntimeError("cannot find the optiqoflow db/ folder (functions and migrations)")


def functions_dir() -> Path:
    return db_root() / "functions"


def migrations_dir() -> Path:
    return db_root() / "migrations"
