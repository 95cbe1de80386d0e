"""Row lineage (docs/semantics.md, "Row lineage"): every row records in _of_log_id the
webhook_logs id of the delivery that last wrote it, and the README's recipe joins a row
to that delivery in one query."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.helpers import (
    SOURCE,
    TARGET,
    Conn,
    apply,
    delete,
    envelope,
    full_sync,
    new_id,
    rec,
    tombstone,
    upsert,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def lineage(c: Conn, tenant: str, id_: str, table: str = TARGET) -> int | None:
    row = c.execute(
        f"SELECT _of_log_id FROM optiqoflow.{table} WHERE tenant_id = %s AND id = %s", (tenant, id_)
    ).fetchone()
    assert row is not None, "no such row"
    value: int | None = row[0]
    return value


def test_every_write_records_its_delivery(conn: Conn, tenant: str) -> None:
    a, b = new_id(), new_id()
    first = apply(conn, upsert(tenant, rec(a, 1, title="one")), "d-1")
    assert lineage(conn, tenant, a) == first["log_id"]

    second = apply(conn, upsert(tenant, rec(a, 2, title="two"), "UPDATE"), "d-2")
    assert second["status"] == "applied"
    assert lineage(conn, tenant, a) == second["log_id"]

    # stale and duplicate deliveries leave the row's lineage alone
    assert apply(conn, upsert(tenant, rec(a, 1, title="old"), "UPDATE"), "d-3")["status"] == "stale"
    assert (
        apply(conn, upsert(tenant, rec(a, 2, title="two"), "UPDATE"), "d-2")["status"]
        == "duplicate"
    )
    assert lineage(conn, tenant, a) == second["log_id"]

    # a FULL_SYNC batch: the rows it writes get its log id; a row it only sees keeps its own
    batch = apply(
        conn, full_sync(tenant, [rec(a, 2, title="two"), rec(b, 3, title="b")], 0, 2, "run-1")
    )
    assert batch["status"] == "applied" and batch["upserted"] == 1
    assert lineage(conn, tenant, b) == batch["log_id"]
    assert lineage(conn, tenant, a) == second["log_id"]

    # a DELETE: the tombstone carries it
    gone = apply(conn, delete(tenant, rec(b, 4)))
    assert tombstone(conn, tenant, b) is not None
    assert conn.execute(
        "SELECT webhook_log_id FROM optiqoflow.tombstones WHERE tenant_id = %s AND id = %s",
        (tenant, b),
    ).fetchone() == (gone["log_id"],)


def test_each_event_of_an_envelope_and_of_a_group_has_its_own(conn: Conn, tenant: str) -> None:
    ids = [new_id() for _ in range(3)]
    answer = apply(
        conn, envelope(tenant, *(upsert(None, rec(i, 1), table=SOURCE) for i in ids)), "env-1"
    )
    events: list[dict[str, Any]] = answer["events"]
    assert [lineage(conn, tenant, i) for i in ids] == [e["log_id"] for e in events]
    assert len({e["log_id"] for e in events} | {answer["log_id"]}) == 4

    more = [new_id() for _ in range(3)]
    rows = conn.execute(
        "SELECT n, answer FROM optiqoflow.apply_webhook_group(%s::jsonb, %s)",
        (json.dumps([upsert(tenant, rec(i, 1)) for i in more]), [f"g-{i}" for i in more]),
    ).fetchall()
    assert [lineage(conn, tenant, i) for i in more] == [a["log_id"] for _, a in sorted(rows)]


def test_a_write_by_hand_after_a_delivery_in_the_same_transaction_is_not_its(
    conn: Conn, tenant: str
) -> None:
    a, b = new_id(), new_id()
    with conn.transaction():
        answer = apply(conn, upsert(tenant, rec(a, 1)))
        conn.execute(
            "SELECT optiqoflow.upsert_record(%s, %s, %s::jsonb)",
            (tenant, SOURCE, json.dumps(rec(b, 1))),
        )
    assert lineage(conn, tenant, a) == answer["log_id"]
    assert lineage(conn, tenant, b) is None


def test_a_refused_delivery_leaves_no_trace_on_rows(conn: Conn, tenant: str) -> None:
    a = new_id()
    ok = apply(conn, upsert(tenant, rec(a, 1)))
    refused = apply(conn, upsert(tenant, rec(a, 2, **{"bad key": 1}), "UPDATE"))
    assert refused["status"] == "refused"
    assert lineage(conn, tenant, a) == ok["log_id"]


def test_the_readme_recipe_is_one_join(conn: Conn, tenant: str) -> None:
    found = re.search(r"<!-- lineage recipe -->\n```sql\n(.*?)```\n<!-- end of lineage recipe -->",
                      README.read_text(), re.S)  # fmt: skip
    assert found
    recipe = found.group(1)
    assert recipe.count("JOIN") == 1
    a = new_id()
    answer = apply(conn, upsert(tenant, rec(a, 1, title="why")), "why-1")
    query = recipe.replace("5b0c7f9e-1d2e-4f3a-9b8c-7d6e5f4a3b2c", tenant).replace(
        "0f8fad5b-d9cb-469f-a165-70867728950e", a
    )
    cur = conn.execute(query.encode())
    names = [d.name for d in cur.description or []]
    got = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    assert len(got) == 1
    assert got[0]["log_id"] == answer["log_id"]
    assert got[0]["operation"] == "INSERT" and got[0]["delivery_id"] == "why-1"


def test_a_table_made_on_a_first_push_has_the_column(conn: Conn, tenant: str) -> None:
    conn.execute(
        "INSERT INTO optiqoflow.table_mappings (source_table, target_table) VALUES ('lineage_src', 'lineage_t')"
    )
    a = new_id()
    answer = apply(conn, upsert(tenant, rec(a, 1, name="x"), table="lineage_src"))
    assert answer["status"] == "applied", answer
    assert lineage(conn, tenant, a, "lineage_t") == answer["log_id"]
