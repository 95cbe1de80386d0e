"""What the tests share: one record builder (`rec`), the payloads around it, one `apply`
(optiqoflow.apply_webhook called as the receiver calls it), readers of the tables a
delivery writes, and throwaway databases. Fixtures are in tests/conftest.py; the HTTP
side (a receiver on loopback, signed requests) in tests/http_helpers.py.

Everything reads the database directly: the tests assert rows, tombstones and log rows,
not only the answer of optiqoflow.apply_webhook.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import datetime as dt
import itertools
import json
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from operations.embedded import process_alive

PASSWORD = uuid.uuid4().hex  # of the LOGIN roles tests make (make_role)
SOURCE = "adhoc_work_orders"  # Optiqo's name ...
TARGET = "work_orders"  # ... and ours
BASE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

Conn = psycopg.Connection[Any]


# --- versions and ids --------------------------------------------------------------------


def _iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def v(n: int) -> str:
    """Version number n (n minutes after BASE) as the ISO 8601 text a sender puts in
    updated_at / occurred_at."""
    return _iso(BASE + dt.timedelta(minutes=n))


def vt(n: int) -> dt.datetime:
    """Version number n as the timestamptz PostgreSQL hands back."""
    return BASE + dt.timedelta(minutes=n)


_handed_out = itertools.count(1)


def next_version() -> str:
    """A version newer than every one next_version() handed out before in this process
    (one second apart, from BASE on)."""
    return _iso(BASE + dt.timedelta(seconds=next(_handed_out)))


def new_id() -> str:
    return str(uuid.uuid4())


# --- the record builder ---------------------------------------------------------------------


class _Next:
    """The default of rec()'s version: next_version()."""


_NEXT = _Next()


def rec(
    id_: str | None = None, at: int | str | _Next | None = _NEXT, /, **cols: Any
) -> dict[str, Any]:
    """A record as a sender puts it in `record`, `old_record` or `records`:
    {"id": ..., "updated_at": ..., **cols}.

    id_: the record's id; omitted (or None), a new UUID.
    at: its updated_at. An int n is v(n); a string is sent as written; None sends no
        updated_at; omitted, next_version() (for tests where each push only needs to be
        newer than the one before).
    cols: every other key, as sent (they win over id_ and at: rec(updated_at=None)).
    """
    r: dict[str, Any] = {"id": new_id() if id_ is None else id_}
    if isinstance(at, _Next):
        r["updated_at"] = next_version()
    elif isinstance(at, int):
        r["updated_at"] = v(at)
    elif at is not None:
        r["updated_at"] = at
    r.update(cols)
    return r


# --- payloads ---------------------------------------------------------------------------------


def upsert(
    tenant: str | None,
    record: dict[str, Any],
    op: str = "INSERT",
    *,
    table: str = SOURCE,
    **env: Any,
) -> dict[str, Any]:
    """An INSERT (or `op`) of one record; tenant None leaves the envelope's tenant_id out;
    env: more envelope keys (occurred_at, event_id, ...), which win over these."""
    p: dict[str, Any] = {"type": op, "table": table}
    if tenant is not None:
        p["tenant_id"] = tenant
    p["record"] = record
    p.update(env)
    return p


def delete(
    tenant: str | None, old_record: dict[str, Any], *, table: str = SOURCE, **env: Any
) -> dict[str, Any]:
    p: dict[str, Any] = {"type": "DELETE", "table": table}
    if tenant is not None:
        p["tenant_id"] = tenant
    p.update({"record": None, "old_record": old_record})
    p.update(env)
    return p


def full_sync(
    tenant: str,
    records: list[dict[str, Any]],
    offset: int,
    total: int | None = None,
    sync_id: str | None = None,
    *,
    table: str = SOURCE,
    **env: Any,
) -> dict[str, Any]:
    p: dict[str, Any] = {
        "type": "FULL_SYNC", "table": table, "tenant_id": tenant, "records": records, "offset": offset,
    }  # fmt: skip
    if total is not None:
        p["total"] = total
    if sync_id is not None:
        p["sync_id"] = sync_id
    p.update(env)
    return p


def envelope(tenant: str | None, *events: dict[str, Any]) -> dict[str, Any]:
    """A BATCH envelope of real-time events (docs/payloads.md, "BATCH")."""
    p: dict[str, Any] = {"type": "BATCH", "events": list(events)}
    if tenant:
        p["tenant_id"] = tenant
    return p


def zone_payload(
    tenant: str, *, name: str = "Lobby", updated_at: str = "2026-01-01T10:00:00Z", **extra: Any
) -> dict[str, Any]:
    """An INSERT of a zone category naming its tenant, as Optiqo sends one; `id` goes into
    the record, every other extra key into the envelope (`table` included)."""
    record = rec(
        extra.pop("id", None), updated_at,
        tenant_id=tenant, name=name, active=True, created_at="2026-01-01T09:00:00Z",
    )  # fmt: skip
    return upsert(tenant, record, table=extra.pop("table", "zone_categories"), **extra)


# --- applying ---------------------------------------------------------------------------------


def apply(c: Conn, payload: dict[str, Any] | str, delivery_id: str | None = None) -> dict[str, Any]:
    """Call optiqoflow.apply_webhook as the receiver does, return its JSON answer."""
    body = payload if isinstance(payload, str) else json.dumps(payload)
    row = c.execute(
        "SELECT optiqoflow.apply_webhook(%s::jsonb, %s)", (body, delivery_id)
    ).fetchone()
    assert row is not None
    result: dict[str, Any] = row[0]
    return result


def hold_row_bucket(c: Conn, tenant: str, target: str, record_id: str) -> None:
    """Take, in c's open transaction, the row-bucket lock a delivery of `record_id` to
    `target` needs (a row of optiqoflow.lock_slots; c must be the owner or a superuser)."""
    c.execute(
        "SELECT FROM optiqoflow.lock_slots WHERE slot = optiqoflow._row_lock_slot("
        "optiqoflow._row_lock_space(%s, %s), optiqoflow._row_lock_bucket(%s)) FOR UPDATE",
        (tenant, target, record_id),
    )


def hold_lock(c: Conn, name: str) -> None:
    """Take, in c's open transaction, the named lock ('sync/<tenant>/<table>', ...) of optiqoflow._lock."""
    c.execute("SELECT FROM optiqoflow.lock_slots WHERE slot = optiqoflow._lock_slot(%s) FOR UPDATE", (name,))


def push(c: Conn, tenant: str, table: str = SOURCE, **fields: Any) -> dict[str, Any]:
    """INSERT one new record with these fields (or `record=`); asserts it was applied."""
    answer = apply(c, upsert(tenant, fields.pop("record", None) or rec(**fields), table=table))
    assert answer["status"] == "applied", answer
    return answer


def in_opposite_orders(
    send: Callable[[list[str], int], None], ids: list[str]
) -> list[BaseException]:
    """Three rounds of six threads, each calling send(ids in one order or the reverse, a
    version number unique to the thread, newest in the last round); the errors raised."""
    errors: list[BaseException] = []

    def run(order: list[str], version: int) -> None:
        try:
            send(order, version)
        except BaseException as e:
            errors.append(e)

    for round_ in range(3):
        threads = [
            threading.Thread(target=run, args=(ids if i % 2 else ids[::-1], round_ * 10 + i + 1))
            for i in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return errors


# --- readers ----------------------------------------------------------------------------------


def row(c: Conn, tenant: str, id_: str, table: str = TARGET) -> dict[str, Any] | None:
    """The stored row (every column, bookkeeping included), or None."""
    with c.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT * FROM optiqoflow.{table} WHERE tenant_id = %s AND id = %s",
            (tenant, id_),
            prepare=False,
        ).fetchone()


def rows(c: Conn, tenant: str, table: str = TARGET) -> dict[str, dict[str, Any]]:
    """The tenant's rows of a target table, by id (text)."""
    with c.cursor(row_factory=dict_row) as cur:
        found = cur.execute(
            f"SELECT * FROM optiqoflow.{table} WHERE tenant_id = %s ORDER BY id",
            (tenant,),
            prepare=False,
        ).fetchall()
    return {str(r["id"]): r for r in found}


def versions(c: Conn, tenant: str, table: str = TARGET) -> dict[str, dt.datetime]:
    return {k: r["updated_at"] for k, r in rows(c, tenant, table).items()}


def tombstone(c: Conn, tenant: str, id_: str, table: str = TARGET) -> dt.datetime | None:
    found = c.execute(
        "SELECT version FROM optiqoflow.tombstones WHERE tenant_id = %s AND target_table = %s AND id = %s",
        (tenant, table, id_),
    ).fetchone()
    return None if found is None else found[0]


def tombstones(c: Conn, tenant: str, table: str = TARGET) -> dict[str, dt.datetime]:
    found = c.execute(
        "SELECT id::text, version FROM optiqoflow.tombstones WHERE tenant_id = %s AND target_table = %s",
        (tenant, table),
    ).fetchall()
    return dict(found)


def log_row(c: Conn, log_id: int) -> dict[str, Any]:
    """A delivery's webhook_logs row, with the payload or bytes of a refused or unusable
    delivery as kept (once) in refused_deliveries."""
    with c.cursor(row_factory=dict_row) as cur:
        found = cur.execute(
            """SELECT l.*, coalesce(l.payload, r.payload) AS kept_payload,
                      coalesce(l.raw_body, r.raw_body) AS kept_raw_body
                 FROM optiqoflow.webhook_logs l
                 LEFT JOIN optiqoflow.refused_deliveries r ON r.log_id = l.id
                WHERE l.id = %s""",
            (log_id,),
        ).fetchone()
    assert found is not None, f"no webhook_logs row {log_id}"
    found["payload"], found["raw_body"] = found.pop("kept_payload"), found.pop("kept_raw_body")
    return found


def push_logs(c: Conn, tenant: str | None = None) -> list[dict[str, Any]]:
    with c.cursor(row_factory=dict_row) as cur:
        if tenant is None:
            return cur.execute("SELECT * FROM tenants.tenant_data_push_log ORDER BY id").fetchall()
        return cur.execute(
            "SELECT * FROM tenants.tenant_data_push_log WHERE tenant_id = %s ORDER BY id", (tenant,)
        ).fetchall()


def count(c: Conn, query: str, *params: Any) -> int:
    found = c.execute(query, params).fetchone()
    assert found is not None
    return int(found[0])


def sync_runs(c: Conn, tenant: str, table: str = TARGET) -> list[dict[str, Any]]:
    with c.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM optiqoflow.sync_runs WHERE tenant_id = %s AND target_table = %s ORDER BY id",
            (tenant, table),
        ).fetchall()


# --- databases ----------------------------------------------------------------------------------


def dsn_with_db(dsn: str, dbname: str, **extra: Any) -> str:
    params = conninfo_to_dict(dsn)
    params["dbname"] = dbname
    params.update(extra)
    return make_conninfo("", **params)


class _Databases:
    """Test databases, made and dropped by one thread beside the tests.

    Copying the migrated template takes 0.1-0.9 s and dropping a database up to 0.6 s
    (below): for ~400 tests with a database, minutes of each suite run. So the next
    test's copy of a template is made while the current test runs, and a finished test's
    database is dropped while the next one runs (at most DROPS_PENDING waiting, so the
    disk holds a bounded number of them), or kept to the end (`keep_to_the_end`). Errors
    of either surface in the test that takes the copy, or at the next drop or at `drain`."""

    DROPS_PENDING = 2
    KEPT_AT_MOST = 600  # of a server whose databases are kept to the end (~16 MiB each)

    def __init__(self) -> None:
        self._names = itertools.count()
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="test-databases")
        self._spares: dict[tuple[str, str | None], concurrent.futures.Future[str]] = {}
        self._drops: collections.deque[concurrent.futures.Future[None]] = collections.deque()
        self._kept: dict[str, collections.deque[str]] = {}

    def drop_leftovers(self, admin: str) -> None:
        """Drop the databases an earlier session on this machine left behind when it was
        killed before it could (its process is gone); a database still in use stays."""
        with psycopg.connect(admin, autocommit=True) as c:
            names = [str(r[0]) for r in c.execute(
                "SELECT datname FROM pg_database WHERE datname ~ '^optiqoflow_(t|tpl_)[0-9]+'")]
        gone = [n for n in names if not process_alive(int(re.findall(r"[0-9]+", n)[0]))]
        self._drop_all(admin, gone, force=False)

    def keep_to_the_end(self, admin: str) -> None:
        """Drop the databases of `admin` at `drain`, not as tests end: for a server not
        started by the tests, whose data may be on a disk file system such as the ext4
        without a journal of this project's CI machines. There, creating a file is slow
        for a minute or more after many files were deleted (the allocator skips recently
        deleted inodes), and a test database is ~700 files: dropping one per test made the
        next copies of the template take 0.6-0.9 s instead of 0.1 s."""
        self._kept.setdefault(admin, collections.deque())

    def _create(self, admin: str, template: str | None) -> str:
        name = f"optiqoflow_t{os.getpid()}_{next(self._names)}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(statement)
            # a test's commits need not wait for the disk (no test survives a crash of
            # this server; those that crash one use a server of their own)
            c.execute(sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(sql.Identifier(name)))
        return name

    @staticmethod
    def _drop(admin: str, name: str, *, force: bool = True) -> None:
        """DROP DATABASE `name`; with `force`, its connections ended first, else a
        database still in use stays (its error is ignored)."""
        statement = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
        if force:
            statement += sql.SQL(" WITH (FORCE)")
        try:
            with psycopg.connect(admin, autocommit=True) as c:
                c.execute(statement)
        except psycopg.Error:
            if force:
                raise

    def take(self, admin: str, template: str | None) -> str:
        """A new database (a copy of `template`, or empty); the next one is started."""
        spare = self._spares.pop((admin, template), None)
        name = spare.result() if spare is not None else self._create(admin, template)
        self._spares[admin, template] = self._worker.submit(self._create, admin, template)
        return name

    def give_back(self, admin: str, name: str) -> None:
        """Drop `name` beside the next test, once at most DROPS_PENDING others wait (or
        at `drain`, for a server kept to the end, up to KEPT_AT_MOST databases)."""
        kept = self._kept.get(admin)
        if kept is not None:
            kept.append(name)
            if len(kept) <= self.KEPT_AT_MOST:
                return
            name = kept.popleft()
        while self._drops and (self._drops[0].done() or len(self._drops) >= self.DROPS_PENDING):
            self._drops.popleft().result()
        self._drops.append(self._worker.submit(self._drop, admin, name))

    def drain(self, admin: str, template: str | None = None) -> None:
        """Drop the spares of `admin` (of `template` only, when given) and wait for every
        drop: before the template or the server goes."""
        for key in [k for k in self._spares if k[0] == admin and (template is None or k[1] == template)]:
            self._drop(admin, self._spares.pop(key).result())
        while self._drops:
            self._drops.popleft().result()
        kept = self._kept.pop(admin, None)
        if kept:
            self._drop_all(admin, list(kept), force=True)

    @classmethod
    def _drop_all(cls, admin: str, names: list[str], *, force: bool) -> None:
        """Drop `names`, many at once: a DROP DATABASE mostly waits for its files to go,
        and the waits overlap (on PostgreSQL 15 here: 0.58 s a database one by one,
        0.08-0.09 s eight or sixteen at once); `force` as in `_drop`."""
        with concurrent.futures.ThreadPoolExecutor(16, thread_name_prefix="test-drops") as drops:
            list(drops.map(lambda name: cls._drop(admin, name, force=force), names))


DATABASES = _Databases()


@contextlib.contextmanager
def fresh_database(pg_admin_dsn: str, template: str | None) -> Iterator[str]:
    """DSN of a new database (a copy of `template`, or empty), dropped afterwards."""
    name = DATABASES.take(pg_admin_dsn, template)
    try:
        yield dsn_with_db(pg_admin_dsn, name)
    finally:
        DATABASES.give_back(pg_admin_dsn, name)
