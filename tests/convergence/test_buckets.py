"""Bucket figures (README, "Repair without peering"): the query the README gives a source,
run on the simulator's real source database, produces exactly what
optiqoflow.bucket_fingerprints produces on our side for the same rows; a changed row
changes its bucket's figures and no other."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from simulator import source as simsource
from tests.helpers import Conn, apply, fresh_database

README = Path(__file__).resolve().parents[2] / "README.md"
Figures = dict[str, tuple[int, Decimal]]


@pytest.fixture
def source(pg_admin_dsn: str) -> Iterator[Conn]:
    """The simulator's source database after a seeded workload (3 tenants)."""
    with fresh_database(pg_admin_dsn, None) as dsn, psycopg.connect(dsn, autocommit=True) as c:
        simsource.create_source(c, "buckets", 5, {})
        simsource.run_workload(
            c,
            simsource.WorkloadOptions(
                run_id="buckets", events=400, seed=5, full_syncs=0, abandoned=0
            ),
        )
        yield c


def readme_query() -> str:
    text = README.read_text()
    found = re.search(
        r"<!-- source bucket query -->\n```sql\n(.*?)```\n<!-- end of source bucket query -->",
        text,
        re.S,
    )
    assert found, "README has lost its source bucket query"
    return found.group(1)


def squeeze(query: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"\s*([(),])\s*", r"\1", query)).strip()


def load(c: Conn, src: Conn, table: str) -> list[str]:
    """Our database gets the source's rows of `table` (one FULL_SYNC per tenant, with a
    total), as the simulator pushes them; returns the tenants."""
    tenants = [str(t) for (t,) in src.execute(
        sql.SQL("SELECT DISTINCT tenant_id FROM optiqo.{} ORDER BY 1").format(sql.Identifier(table)))]  # fmt: skip
    for tenant in tenants:
        row = src.execute(
            sql.SQL("SELECT jsonb_agg(optiqo._pushed(%s, to_jsonb(x)))::text FROM optiqo.{} x "
                    "WHERE x.tenant_id = %s").format(sql.Identifier(table)),
            (table, tenant),
        ).fetchone()  # fmt: skip
        assert row is not None
        records = json.loads(row[0])
        answer = apply(c, {"type": "FULL_SYNC", "table": table, "tenant_id": tenant, "records": records,
                           "offset": 0, "total": len(records), "sync_id": f"load-{table}"})  # fmt: skip
        assert answer["status"] == "applied", answer
    return tenants


def source_figures(src: Conn, query: str, tenant: str, within: list[str] | None = None) -> Figures:
    cursor = psycopg.RawCursor(src)  # the query's parameters are $1 and $2
    return {
        bucket: (int(n), Decimal(s))
        for _, bucket, n, s in cursor.execute(query, ([tenant], within))
    }


def our_figures(
    c: Conn, tenant: str, table: str, digits: int = 2, within: list[str] | None = None
) -> Figures:
    return {
        bucket: (int(n), Decimal(s))
        for bucket, n, s in c.execute(
            "SELECT * FROM optiqoflow.bucket_fingerprints(%s, %s, %s, %s)",
            (tenant, table, digits, within),
        )
    }


def test_the_readme_query_is_the_one_formula(conn: Conn) -> None:
    row = conn.execute(
        "SELECT optiqoflow.fingerprint_query('optiqo', 'adhoc_work_orders', 2)"
    ).fetchone()
    assert row is not None
    assert squeeze(readme_query()) == squeeze(row[0])
    # two arguments: the whole-table query it always was
    whole = conn.execute(
        "SELECT optiqoflow.fingerprint_query('optiqo', 'adhoc_work_orders')"
    ).fetchone()
    assert whole is not None and "bucket" not in whole[0] and "$2" not in whole[0]


def test_the_source_computes_the_same_figures_on_the_same_rows(conn: Conn, source: Conn) -> None:
    table = "adhoc_work_orders"
    tenants = load(conn, source, table)
    assert len(tenants) >= 2
    query = readme_query()
    compared = 0
    for tenant in tenants:
        theirs = source_figures(source, query, tenant)
        ours = our_figures(conn, tenant, table)
        assert theirs == ours and len(ours) > 1
        compared += sum(n for n, _ in ours.values())
        # the buckets add up to the whole-table fingerprint
        fp = conn.execute(
            "SELECT row_count, checksum FROM optiqoflow.table_fingerprint(%s, %s)", (tenant, table)
        ).fetchone()
        assert fp is not None
        assert (fp[0], fp[1]) == (
            sum(n for n, _ in ours.values()),
            sum(s for _, s in ours.values()),
        )
    assert compared > 10

    # a row that changes on the source changes its bucket's figures and only those; the
    # sub-buckets (4 digits) within it point at its sub-bucket alone
    tenant = tenants[0]
    rid = source.execute(sql.SQL("SELECT id::text FROM optiqo.{} WHERE tenant_id = %s ORDER BY id LIMIT 1")
                         .format(sql.Identifier(table)), (tenant,)).fetchone()[0]  # type: ignore[index]  # fmt: skip
    source.execute(sql.SQL("UPDATE optiqo.{} SET updated_at = updated_at + interval '1 microsecond' WHERE id = %s")
                   .format(sql.Identifier(table)), (rid,))  # fmt: skip
    theirs, ours = source_figures(source, query, tenant), our_figures(conn, tenant, table)
    differ = sorted(b for b in set(theirs) | set(ours) if theirs.get(b) != ours.get(b))
    bucket = conn.execute("SELECT left(md5(%s::uuid::text), 2)", (rid,)).fetchone()[0]  # type: ignore[index]
    assert differ == [bucket]
    sub_query = query.replace("left(md5(id::text), 2) AS bucket", "left(md5(id::text), 4) AS bucket").replace(
        "GROUP BY tenant_id, left(md5(id::text), 2)", "GROUP BY tenant_id, left(md5(id::text), 4)")  # fmt: skip
    theirs4 = source_figures(source, sub_query, tenant, [bucket])
    ours4 = our_figures(conn, tenant, table, 4, [bucket])
    assert all(len(b) == 4 and b.startswith(bucket) for b in theirs4 | ours4)
    assert sorted(b for b in set(theirs4) | set(ours4) if theirs4.get(b) != ours4.get(b)) == [
        conn.execute("SELECT left(md5(%s::uuid::text), 4)", (rid,)).fetchone()[0]  # type: ignore[index]
    ]


def test_every_table_of_the_source_agrees(conn: Conn, source: Conn) -> None:
    """All 21 tables, every tenant: the query fingerprint_query gives for the source's
    table, run there, equals bucket_fingerprints here."""
    checked = 0
    for (table,) in source.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'optiqo'::regnamespace AND c.relkind = 'r' "
        "AND c.relname IN (SELECT source_table FROM unnest(%s::text[]) source_table) ORDER BY 1",
        ([t for (t,) in conn.execute("SELECT source_table FROM optiqoflow.table_mappings")],),
    ).fetchall():
        row = conn.execute(
            "SELECT optiqoflow.fingerprint_query('optiqo', %s, 2)", (table,)
        ).fetchone()
        assert row is not None
        for tenant in load(conn, source, table):
            assert source_figures(source, row[0], tenant) == our_figures(conn, tenant, table)
            checked += 1
    assert checked >= 20


@pytest.mark.parametrize(
    ("digits", "within"),
    [
        (0, None),
        (3, None),
        (2, ["3g"]),
        (2, ["3F"]),
        (4, ["abc"]),
        (2, [f"{i:02x}" for i in range(256)] + ["00"]),
    ],
)
def test_bad_arguments_are_refused(conn: Conn, digits: int, within: list[str] | None) -> None:
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(
            "SELECT * FROM optiqoflow.bucket_fingerprints(gen_random_uuid(), 'adhoc_work_orders', %s, %s)",
            (digits, within),
        )
    assert caught.value.sqlstate == "OF025"
    assert caught.value.diag.message_hint


def test_a_table_never_pushed_has_no_buckets(conn: Conn) -> None:
    assert conn.execute(
        "SELECT count(*) FROM optiqoflow.bucket_fingerprints(gen_random_uuid(), 'adhoc_work_orders')"
    ).fetchone() == (0,)
