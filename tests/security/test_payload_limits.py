"""A payload cannot exhaust the server: keys that could never become columns are refused
before any per-key work, and typing the keys a table lacks reads each key/value pair
once. Before, one signed INSERT with 100,000 new keys crossed keys with records and
filled the disk with temp files (then answered 503, so its sender retried forever), and
a FULL_SYNC of 20,000 records with one new key each burned a minute of CPU. Each
example runs here under a small temp_file_limit, so a regression fails (53400) instead
of filling a disk.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.helpers import apply, full_sync, new_id, rec, upsert


@pytest.fixture
def bounded(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    conn.execute("SET temp_file_limit = '8MB'")
    return conn


def test_one_record_with_100000_new_keys_is_refused_before_any_per_key_work(
    bounded: psycopg.Connection[Any], tenant: str
) -> None:
    keys = {f"k{n:06d}": "x" * 8 for n in range(100_000)}
    answer = apply(bounded, upsert(tenant, rec(new_id(), 1, **keys)))
    assert (answer["status"], answer["sqlstate"]) == ("refused", "OF022"), answer
    assert "1,600 columns" in answer["detail"]
    # kept for inspection and replay, nothing written
    assert bounded.execute(
        "SELECT count(*) FROM optiqoflow.refused_deliveries WHERE log_id = %s", (answer["log_id"],)
    ).fetchone() == (1,)
    assert bounded.execute("SELECT count(*) FROM optiqoflow.work_orders WHERE tenant_id = %s", (tenant,)).fetchone() == (0,)


def test_a_full_sync_whose_records_each_bring_a_new_key_is_refused(
    bounded: psycopg.Connection[Any], tenant: str
) -> None:
    records = [rec(new_id(), 1, **{f"new_{n}": n}) for n in range(20_000)]
    answer = apply(bounded, full_sync(tenant, records, offset=0, total=20_000))
    assert (answer["status"], answer["sqlstate"]) == ("refused", "OF022"), {
        k: answer.get(k) for k in ("status", "sqlstate", "error")
    }


def test_new_keys_that_fit_are_typed_from_every_record(
    bounded: psycopg.Connection[Any], tenant: str
) -> None:
    # 40 new keys over 2,000 records: each typed by all of its values (a key is a string in
    # one record and a number in another: jsonb), a key only ever null is not added yet
    records = [
        rec(new_id(), 1, **{f"wide_{n}": (n if i % 2 else str(n)) if n % 2 else n for n in range(40)},
            only_null=None)
        for i in range(2_000)
    ]
    answer = apply(bounded, full_sync(tenant, records, offset=0, total=2_000))
    assert answer["status"] == "applied", answer
    assert len(answer["added_columns"]) == 40 and "only_null" not in answer["added_columns"]
    types = dict(bounded.execute(
        """SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
            WHERE attrelid = 'optiqoflow.work_orders'::regclass AND attname IN ('wide_0', 'wide_1')"""
    ).fetchall())
    assert types == {"wide_0": "numeric", "wide_1": "jsonb"}


def test_under_the_ignore_policy_many_new_keys_are_dropped_not_refused(
    bounded: psycopg.Connection[Any], tenant: str
) -> None:
    bounded.execute("UPDATE optiqoflow.table_mappings SET schema_evolution = 'ignore' WHERE source_table = 'adhoc_work_orders'")
    keys = {f"k{n:05d}": n for n in range(5_000)}
    answer = apply(bounded, upsert(tenant, rec(new_id(), 1, title="t", **keys)))
    assert answer["status"] == "applied" and len(answer["ignored_columns"]) == 5_000
