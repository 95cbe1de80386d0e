"""The receiver over real loopback HTTP with real signatures (docs/payloads.md).

Tests without a database point the receiver at a port that counts connection attempts:
nothing before a valid signature may take one. Tests with a database use a fresh
migrated one (`db_dsn`) and the real optiqoflow.apply_webhook.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from receiver import body as receiver_body
from receiver.answers import is_transient
from receiver.app import WEBHOOK_PATH
from receiver.signatures import sign_plain
from tests.helpers import envelope, rec, rows, upsert, zone_payload
from tests.helpers import log_row as kept_log_row
from tests.http_helpers import (
    OLD_SECRET,
    SECRET,
    Endpoint,
    counting_listener,
    http_post,
    plain_delivery_id,
    raw_request,
    receiver_config,
    serving,
    signed_headers,
)

INVALID = {"error": "invalid signature"}


@pytest.fixture
async def no_db() -> AsyncIterator[tuple[Endpoint, list[int]]]:
    """A receiver whose database is a port that must never be dialled."""
    async with (
        counting_listener() as (dsn, attempts),
        serving(
            receiver_config(dsn, max_body_bytes=4096, read_timeout=1.0, pool_timeout=1.0)
        ) as ep,
    ):
        yield ep, attempts


@pytest.fixture
async def live(db_dsn: str) -> AsyncIterator[Endpoint]:
    async with serving(receiver_config(db_dsn)) as ep:
        yield ep


def log_row(dsn: str, log_id: int) -> dict[str, Any]:
    """The delivery's log row, with its payload or bytes as kept in refused_deliveries."""
    with psycopg.connect(dsn) as c:
        return kept_log_row(c, log_id)


# --- before any database: 401, 413, 408, 415 ----------------------------------------------


async def test_unsigned_and_badly_signed_are_401_without_touching_the_database(
    no_db: tuple[Endpoint, list[int]],
) -> None:
    ep, attempts = no_db
    body = json.dumps(zone_payload(str(uuid.uuid4()))).encode()
    for scheme, secret in ((None, SECRET), ("plain", "wrong"), ("standard", "wrong")):
        reply = await ep.post(body, scheme=scheme, secret=secret)
        assert (reply.status, reply.body) == (401, INVALID)
    reply = await ep.post(body, headers={"x-webhook-signature": "sha256=" + "0" * 64})
    assert (reply.status, reply.body) == (401, INVALID)
    # signed for another body (the sender re-serialised it)
    reply = await ep.post(
        json.dumps(json.loads(body), indent=1).encode(), headers=signed_headers(body, "plain")
    )
    assert reply.status == 401
    assert attempts == []


@pytest.mark.parametrize(
    "header",
    [
        (b"x-webhook-signature", "\u00e9".encode("latin-1") * 64),  # not UTF-8
        (b"x-webhook-signature", "\u00e9".encode() * 32),  # UTF-8, not hex
        (b"webhook-signature", b"v1,\xff\xfe"),
        (b"webhook-id", b"\xff"),
    ],
)
async def test_non_ascii_signature_headers_are_401_not_500(
    no_db: tuple[Endpoint, list[int]], header: tuple[bytes, bytes]
) -> None:
    ep, attempts = no_db
    body = b'{"a": 1}'
    extra = (
        [(b"webhook-timestamp", b"1700000000"), (b"webhook-id", b"m")]
        if header[0].startswith(b"webhook")
        else []
    )
    extra = [(n, v) for n, v in extra if n != header[0]]
    reply = await raw_request(ep.port, http_post(WEBHOOK_PATH, [header, *extra], body))
    assert (reply.status, reply.body) == (401, INVALID)
    assert attempts == []


async def test_declared_oversize_body_is_413_before_reading(
    no_db: tuple[Endpoint, list[int]],
) -> None:
    ep, attempts = no_db
    body = b"x" * 4097
    reply = await raw_request(
        ep.port,
        http_post(
            WEBHOOK_PATH,
            [(b"x-webhook-signature", sign_plain(SECRET, body).encode())],
            b"",
            length=len(body),
        ),
    )
    assert reply.status == 413
    assert "4096" in reply.body["error"]
    assert attempts == []


async def test_chunked_oversize_body_is_413(no_db: tuple[Endpoint, list[int]]) -> None:
    ep, attempts = no_db
    body = b"y" * 5000

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    h = {"x-webhook-signature": sign_plain(SECRET, body)}
    async with ep.session.post(ep.url(), data=chunks(), headers=h) as r:
        assert r.status == 413
    assert attempts == []


async def test_body_of_exactly_the_limit_is_read(no_db: tuple[Endpoint, list[int]]) -> None:
    ep, _ = no_db
    body = b"z" * 4096  # read in full, then judged by its (missing) signature
    reply = await ep.post(body, scheme=None)
    assert reply.status == 401


async def test_stalled_body_is_408(no_db: tuple[Endpoint, list[int]]) -> None:
    ep, attempts = no_db
    request = http_post(WEBHOOK_PATH, [(b"x-webhook-signature", b"0" * 64)], b'{"a":', length=100)
    reply = await raw_request(ep.port, request, pause=0)  # the rest never comes
    assert reply.status == 408
    assert "1 s" in reply.body["error"]
    assert attempts == []


async def test_sender_hanging_up_mid_body_is_no_error(
    no_db: tuple[Endpoint, list[int]], caplog: pytest.LogCaptureFixture
) -> None:
    ep, attempts = no_db
    _, writer = await asyncio.open_connection("127.0.0.1", ep.port)
    writer.write(
        http_post(WEBHOOK_PATH, [(b"x-webhook-signature", b"0" * 64)], b'{"a":', length=100)
    )
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.3)
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
    assert (await ep.get("/healthz")).status == 200
    assert attempts == []


async def test_401_log_line_says_why(
    no_db: tuple[Endpoint, list[int]], caplog: pytest.LogCaptureFixture
) -> None:
    ep, _ = no_db
    caplog.set_level("INFO", logger="optiqoflow.receiver")
    body = b'{"a": 1}'
    h = signed_headers(body, "standard")
    h["webhook-timestamp"] = "1000000000"
    assert (await ep.post(body, scheme=None, headers=h)).status == 401
    (line,) = [r for r in caplog.records if r.getMessage() == "delivery invalid_signature"]
    assert line.fields["error"] == "standard scheme: timestamp"  # type: ignore[attr-defined]


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "GZIP "])
async def test_compressed_body_is_415_whatever_the_signature(
    no_db: tuple[Endpoint, list[int]], encoding: str
) -> None:
    ep, attempts = no_db
    plain = b'{"a": 1}'
    packed = gzip.compress(plain)
    for signed in (plain, packed):
        h = {"Content-Encoding": encoding, "x-webhook-signature": sign_plain(SECRET, signed)}
        reply = await ep.post(packed, scheme=None, headers=h)
        assert reply.status == 415
        assert "uncompressed" in reply.body["error"]
    reply = await ep.post(plain, scheme=None, headers={"Content-Encoding": "identity"})
    assert reply.status == 401  # identity is no encoding
    assert attempts == []


@pytest.mark.parametrize("coding", [b"gzip, chunked", b"deflate,chunked"])
async def test_compressed_transfer_coding_is_415(
    no_db: tuple[Endpoint, list[int]], coding: bytes
) -> None:
    ep, attempts = no_db
    packed = gzip.compress(b'{"a": 1}')
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(packed), packed)
    request = b"\r\n".join(
        [
            b"POST " + WEBHOOK_PATH.encode() + b" HTTP/1.1",
            b"Host: 127.0.0.1",
            b"Transfer-Encoding: " + coding,
            b"x-webhook-signature: " + sign_plain(SECRET, packed).encode(),
            b"",
            chunked,
        ]
    )
    reply = await raw_request(ep.port, request)
    assert reply.status == 415
    assert "Transfer-Encoding" in reply.body["error"]
    assert attempts == []


async def test_signed_delivery_with_the_database_down_is_503_with_retry_after(
    no_db: tuple[Endpoint, list[int]],
) -> None:
    ep, attempts = no_db
    reply = await ep.post(zone_payload(str(uuid.uuid4())))
    assert reply.status == 503
    assert reply.headers["Retry-After"] == "7"
    assert "retry" in reply.body["error"]
    assert attempts  # it did try


async def test_healthz_readyz_metrics_without_database(no_db: tuple[Endpoint, list[int]]) -> None:
    ep, _ = no_db
    assert (await ep.get("/healthz")).status == 200
    ready = await ep.get("/readyz")
    assert ready.status == 503
    assert ready.body["status"] == "not ready"
    assert ready.body["reason"].startswith("database unreachable: ")
    await ep.post(b"{}", scheme="plain", secret="wrong")
    metrics = await ep.get("/metrics")
    assert metrics.status == 200
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert (
        'optiqoflow_signature_failures_total{reason="mismatch",scheme="plain"} 1.0' in metrics.body
    )
    assert (
        'optiqoflow_deliveries_total{operation="",status="invalid_signature",table=""} 1.0'
        in metrics.body
    )
    assert "optiqoflow_db_pool_size" in metrics.body


# --- with the database -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "secret"),
    [("plain", SECRET), ("standard", SECRET), ("plain", OLD_SECRET), ("standard", OLD_SECRET)],
)
async def test_signed_insert_is_applied(live: Endpoint, scheme: str, secret: str) -> None:
    tenant = str(uuid.uuid4())
    payload = zone_payload(tenant)
    reply = await live.post(payload, scheme=scheme, secret=secret)
    assert reply.status == 200, reply.body
    assert reply.body["status"] == "applied"
    assert reply.body["table"] == "zones"
    assert reply.body["rows"] == 1
    with psycopg.connect(live.dsn) as c:
        names = c.execute(
            "SELECT name FROM optiqoflow.zones WHERE tenant_id = %s", (tenant,)
        ).fetchall()
    assert names == [("Lobby",)]
    assert log_row(live.dsn, reply.body["log_id"])["outcome"] == "applied"


async def test_raw_bytes_are_forwarded_not_reserialised(live: Endpoint) -> None:
    tenant = str(uuid.uuid4())
    body = json.dumps(
        zone_payload(tenant, name="Caf\u00e9 \u2603"), indent=3, ensure_ascii=False
    ).encode()
    reply = await live.post(body)
    assert (reply.status, reply.body["status"]) == (200, "applied")
    with psycopg.connect(live.dsn) as c:
        names = c.execute(
            "SELECT name FROM optiqoflow.zones WHERE tenant_id = %s", (tenant,)
        ).fetchall()
    assert names == [("Caf\u00e9 \u2603",)]


@pytest.mark.parametrize("header", ["webhook-id", "x-webhook-id"])
async def test_redelivery_is_a_duplicate(live: Endpoint, header: str) -> None:
    payload = zone_payload(str(uuid.uuid4()))
    body = json.dumps(payload).encode()
    delivery = f"dlv-{uuid.uuid4()}"
    scheme = "standard" if header == "webhook-id" else "plain"
    first = await live.post(body, scheme=scheme, delivery_id=delivery)
    again = await live.post(body, scheme=scheme, delivery_id=delivery)
    assert (first.status, first.body["status"]) == (200, "applied")
    assert (again.status, again.body["status"], again.body["rows"]) == (200, "duplicate", 0)
    # Standard Webhooks signs webhook-id: kept as given; the plain scheme's is bound to the body
    logged = delivery if scheme == "standard" else plain_delivery_id(delivery, body)
    assert log_row(live.dsn, first.body["log_id"])["delivery_id"] == logged


async def test_webhook_id_wins_over_x_webhook_id(live: Endpoint) -> None:
    payload = zone_payload(str(uuid.uuid4()))
    reply = await live.post(payload, headers={"webhook-id": "wid-1", "x-webhook-id": "xid-1"})
    assert reply.status == 200
    logged = log_row(live.dsn, reply.body["log_id"])["delivery_id"]
    assert logged == plain_delivery_id("wid-1", payload)  # signed by the plain scheme


async def test_an_unsigned_id_header_cannot_silence_a_genuine_delivery(live: Endpoint) -> None:
    """The plain scheme does not sign x-webhook-id: one captured body posted under the
    ids of deliveries still to come (dX-1, dX-2, dX-3) must not make the genuine dX-2, a
    delivery of another row, a duplicate. The same bytes under the same id still are."""
    tenant = str(uuid.uuid4())
    captured = json.dumps(zone_payload(tenant, name="captured")).encode()
    replays = [await live.post(captured, delivery_id=f"dX-{i}") for i in (1, 2, 3)]
    assert [r.body["status"] for r in replays] == ["applied", "duplicate", "duplicate"]

    genuine = json.dumps(zone_payload(tenant, name="genuine")).encode()
    reply = await live.post(genuine, delivery_id="dX-2")
    assert (reply.status, reply.body["status"], reply.body["rows"]) == (200, "applied", 1)
    assert log_row(live.dsn, reply.body["log_id"])["delivery_id"] == plain_delivery_id(
        "dX-2", genuine
    )
    again = await live.post(genuine, delivery_id="dX-2")  # the sender's retry
    assert (again.status, again.body["status"]) == (200, "duplicate")
    with psycopg.connect(live.dsn) as c:
        names = c.execute(
            "SELECT name FROM optiqoflow.zones WHERE tenant_id = %s ORDER BY name", (tenant,)
        ).fetchall()
    assert names == [("captured",), ("genuine",)]


async def test_the_longest_delivery_id_still_fits_once_bound_to_the_body(live: Endpoint) -> None:
    longest = "x" * receiver_body.MAX_DELIVERY_ID_CHARS
    payload = zone_payload(str(uuid.uuid4()))
    reply = await live.post(payload, delivery_id=longest)
    assert (reply.status, reply.body["status"]) == (200, "applied")
    logged = log_row(live.dsn, reply.body["log_id"])["delivery_id"]
    assert logged == plain_delivery_id(longest, payload)
    assert len(logged) == receiver_body.MAX_DELIVERY_ID_CHARS + 65
    assert (await live.post(payload, delivery_id=longest)).body["status"] == "duplicate"


async def test_stale_and_refused(live: Endpoint) -> None:
    tenant, row_id = str(uuid.uuid4()), str(uuid.uuid4())
    newer = await live.post(zone_payload(tenant, id=row_id, updated_at="2026-02-01T00:00:00Z"))
    older = await live.post(zone_payload(tenant, id=row_id, updated_at="2026-01-01T00:00:00Z"))
    assert (newer.status, newer.body["status"]) == (200, "applied")
    assert (older.status, older.body["status"]) == (200, "stale")

    unknown = await live.post(
        {"type": "INSERT", "table": "no_such_table", "tenant_id": tenant, "record": {}}
    )
    assert unknown.status == 422
    assert unknown.body["status"] == "refused"
    assert {"error", "sqlstate", "log_id"} <= unknown.body.keys()
    assert log_row(live.dsn, unknown.body["log_id"])["outcome"] == "refused"


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b'{"type": "INSERT", "table": ', 400, "invalid JSON"),
        (b'{"a": "\xff"}', 400, "UTF-8"),
        (b'{"a": NaN}', 400, "NaN"),
        (b'{"tenant_id": "a", "tenant_id": "b"}', 400, "duplicate key"),
        (b'{"a": ' + b"[" * 65 + b"]" * 65 + b"}", 400, "deeper than 64"),
        (b'{"a": ' + b"1" * 1001 + b"}", 400, "digits"),
        (b"[1, 2]", 400, "not an object"),
        (b'{"type": "INSERT", "record": {"name": "a\\u0000b"}}', 422, "\\u0000"),
        (b'{"type": "INSERT", "record": {"name": "\\ud800"}}', 422, "surrogate"),
    ],
)
async def test_signed_unusable_body_is_kept_as_bytes(
    live: Endpoint, body: bytes, status: int, reason: str
) -> None:
    reply = await live.post(body, delivery_id="unusable-1")
    assert reply.status == status
    assert reason in reply.body["error"]
    row = log_row(live.dsn, reply.body["log_id"])
    assert row["outcome"] == "unusable"
    assert bytes(row["raw_body"]) == body
    assert row["delivery_id"] == plain_delivery_id("unusable-1", body)


async def test_malformed_delivery_id_is_400(live: Endpoint) -> None:
    reply = await live.post(zone_payload(str(uuid.uuid4())), headers={"x-webhook-id": "x" * 256})
    assert reply.status == 400
    assert "x-webhook-id" in reply.body["error"]
    assert log_row(live.dsn, reply.body["log_id"])["outcome"] == "unusable"


async def test_readyz_follows_the_migration_state(live: Endpoint) -> None:
    ready = await live.get("/readyz")
    assert ready.status == 200, ready.body
    with psycopg.connect(live.dsn, autocommit=True) as c:
        c.execute("UPDATE public.alembic_version SET version_num = 'older'")
    behind = await live.get("/readyz")
    assert behind.status == 503
    assert behind.body["database_revision"] == ["older"]
    with psycopg.connect(live.dsn, autocommit=True) as c:
        c.execute("DROP TABLE public.alembic_version")
    assert (await live.get("/readyz")).status == 503


async def test_readyz_says_permission_denied_apart_from_unreachable(db_dsn: str) -> None:
    """A role that may not read public.alembic_version is told so, with the grant that
    fixes it; a database that does not answer is "unreachable" (no_db tests)."""
    role = f"receiver_unread_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(db_dsn, autocommit=True) as c:
        c.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    try:
        as_role = make_conninfo(db_dsn, options=f"-c role={role}")  # current_user = role
        async with serving(receiver_config(as_role)) as ep:
            ready = await ep.get("/readyz")
        assert ready.status == 503
        reason = ready.body["reason"]
        assert reason.startswith("permission denied reading public.alembic_version"), reason
        assert "grant SELECT" in reason
        assert "unreachable" not in reason
    finally:
        with psycopg.connect(db_dsn, autocommit=True) as c:
            c.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


async def test_a_database_not_migrated_is_503_with_one_warning_line(
    empty_db_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No optiqoflow schema (3F000): not the delivery's fault, and over once `optiqoflow
    migrate` has run: 503 + Retry-After, one warning line each, no traceback."""
    caplog.set_level("INFO", logger="optiqoflow.receiver")
    async with serving(receiver_config(empty_db_dsn)) as ep:
        applied = await ep.post(zone_payload(str(uuid.uuid4())))
        unusable = await ep.post(b'{"a": NaN}')  # record_unusable_delivery is missing too
    for reply in (applied, unusable):
        assert (reply.status, reply.headers["Retry-After"]) == (503, "7"), reply.body
        assert reply.body == {"error": "database not ready, retry later"}
    lines = [r for r in caplog.records if r.name == "optiqoflow.receiver"]
    assert [(r.levelname, r.getMessage()) for r in lines] == [
        ("WARNING", "delivery not_migrated")
    ] * 2
    assert [r.exc_info for r in lines] == [None, None]
    assert "3F000" in lines[0].fields["error"]  # type: ignore[attr-defined]
    assert "optiqoflow migrate" in lines[0].fields["error"]  # type: ignore[attr-defined]


async def test_a_missing_apply_webhook_is_503_not_500(
    live: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    """42883 on the receiver's own call: the function is not there (not migrated); the
    same SQLSTATE raised inside apply_webhook stays a 500 (test_database_errors_map_...)."""
    caplog.set_level("INFO", logger="optiqoflow.receiver")
    with psycopg.connect(live.dsn, autocommit=True) as c:
        c.execute("DROP FUNCTION optiqoflow.apply_webhook(jsonb, text)")
    reply = await live.post(zone_payload(str(uuid.uuid4())))
    assert (reply.status, reply.headers["Retry-After"]) == (503, "7")
    (line,) = [r for r in caplog.records if r.name == "optiqoflow.receiver"]
    assert (line.levelname, line.exc_info) == ("WARNING", None)
    assert "42883" in line.fields["error"]  # type: ignore[attr-defined]


async def test_metrics_count_deliveries(live: Endpoint) -> None:
    await live.post(zone_payload(str(uuid.uuid4())))
    text = (await live.get("/metrics")).body
    assert (
        'optiqoflow_deliveries_total{operation="INSERT",status="applied",table="zones"} 1.0' in text
    )
    assert 'optiqoflow_delivery_duration_seconds_count{status="applied"} 1.0' in text


async def test_one_log_line_per_delivery_without_secret_or_body(
    live: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = str(uuid.uuid4())
    caplog.set_level("INFO", logger="optiqoflow.receiver")
    await live.post(zone_payload(tenant, name="secret-looking-name"))
    lines = [
        r
        for r in caplog.records
        if r.name == "optiqoflow.receiver" and r.getMessage().startswith("delivery")
    ]
    assert len(lines) == 1
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["status"] == "applied"
    assert fields["table"] == "zones"
    assert fields["tenant"] == tenant
    assert fields["rows"] == 1
    assert isinstance(fields["log_id"], int)
    assert fields["duration_ms"] >= 0
    text = json.dumps(fields) + caplog.text
    assert SECRET not in text
    assert "secret-looking-name" not in text


async def test_the_answer_is_passed_on_as_the_database_wrote_it(live: Endpoint) -> None:
    with psycopg.connect(live.dsn, autocommit=True) as c:
        c.execute(
            """CREATE OR REPLACE FUNCTION optiqoflow.apply_webhook(p_payload jsonb, p_delivery_id text DEFAULT NULL)
               RETURNS jsonb LANGUAGE sql AS $$ SELECT jsonb_build_object(
                   'status', 'applied', 'table', 'zones', 'rows', 1, 'log_id', 7,
                   'note', 'caf\u00e9 \u2603', 'nested', jsonb_build_object('a', array[1, 2])) $$"""
        )
        row = c.execute("SELECT optiqoflow.apply_webhook('{}')::text").fetchone()
    assert row is not None
    body = json.dumps(zone_payload(str(uuid.uuid4()))).encode()
    async with live.session.post(live.url(), data=body, headers=signed_headers(body, "plain")) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/json; charset=utf-8"
        assert await r.text() == row[0]


async def test_large_bodies_are_checked_a_few_at_a_time(
    db_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPTIQO_LARGE_BODY_PARSES bounds how many bodies over 1 MiB are parsed at once
    (each parse takes ~10x the body in memory); smaller bodies do not wait for them."""
    checking, most = 0, 0
    lock = threading.Lock()
    real_checked = receiver_body.checked

    def slow_checked(body: bytes) -> dict[str, Any]:
        nonlocal checking, most
        if len(body) <= receiver_body.PARSE_IN_THREAD_BYTES:
            return real_checked(body)
        with lock:
            checking += 1
            most = max(most, checking)
        try:
            time.sleep(0.2)  # in a worker thread: the event loop goes on
            return real_checked(body)
        finally:
            with lock:
                checking -= 1

    config = receiver_config(db_dsn, max_body_bytes=4 * 1024 * 1024, large_body_parses=2)
    async with serving(config) as ep:
        # the table's column and writer exist before the large bodies' open transactions
        # (a delivery that adds a column or generates a writer holds a lock the others
        # would wait for until its check passes)
        warm = zone_payload(str(uuid.uuid4()), name="warm-up", padding="x")
        assert (await ep.post(warm)).status == 200
        monkeypatch.setattr(receiver_body, "checked", slow_checked)
        tenant = str(uuid.uuid4())
        padding = "x" * (1024 * 1024 + 1)
        started = time.monotonic()
        large = [
            asyncio.create_task(ep.post(zone_payload(tenant, name=f"large-{i}", padding=padding)))
            for i in range(5)
        ]
        await asyncio.sleep(0.05)
        # another tenant: the large bodies' open transactions hold their tenant's first
        # tracking row and views until their checks pass (a wait on row locks, not on parses)
        small = await ep.post(zone_payload(str(uuid.uuid4()), name="small"))
        small_done = time.monotonic() - started
        replies = [*await asyncio.gather(*large), small]
        all_done = time.monotonic() - started
    assert most == 2
    assert all_done >= 0.2 * 3  # five parses, two at a time: three rounds
    assert small_done < all_done - 0.2  # a small body is not queued behind the large ones
    assert [r.status for r in replies] == [200] * 6, [r.body for r in replies]


async def test_a_large_body_is_applied_while_checked_and_committed_only_if_it_passes(
    db_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body over 1 MiB is checked in a thread while the database applies it in an open
    transaction: the check's verdict decides between COMMIT and ROLLBACK. Here the check
    waits until the apply is done and its transaction is open, then refuses the body (a
    key twice, deep inside): 400 with the body kept, and nothing of it committed."""
    real_checked = receiver_body.checked
    seen_open = threading.Event()

    def check_after_the_apply(body: bytes) -> Any:
        if len(body) > receiver_body.PARSE_IN_THREAD_BYTES:
            with psycopg.connect(db_dsn, autocommit=True) as c:
                for _ in range(200):
                    if c.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND state = 'idle in transaction' AND query LIKE '%apply_webhook%'"
                    ).fetchone() == (1,):
                        seen_open.set()
                        break
                    time.sleep(0.02)
        return real_checked(body)

    config = receiver_config(db_dsn, max_body_bytes=4 * 1024 * 1024)
    async with serving(config) as ep:
        monkeypatch.setattr(receiver_body, "checked", check_after_the_apply)
        tenant = str(uuid.uuid4())
        padding = "x" * (1024 * 1024 + 1)
        good = zone_payload(tenant, name="large-ok", padding=padding)
        ok = await ep.post(good)
        assert ok.status == 200, ok.body
        assert seen_open.is_set()  # the apply ran before the verdict
        seen_open.clear()

        bad_id = str(uuid.uuid4())
        text = json.dumps(zone_payload(tenant, name="large-bad", id=bad_id, padding=padding))
        body = text.replace('"name": "large-bad"', '"name": "large-bad", "name": "twice"').encode()
        bad = await ep.post(body)
        assert seen_open.is_set()
    assert bad.status == 400 and "duplicate key" in bad.body["error"], bad.body
    with psycopg.connect(db_dsn) as c:
        names = c.execute(
            "SELECT name FROM optiqoflow.zones WHERE tenant_id = %s ORDER BY name", (tenant,)
        ).fetchall()
        assert names == [("large-ok",)]  # the refused body's row was rolled back
        kept = c.execute(
            "SELECT outcome, octet_length(raw_body) FROM optiqoflow.refused_deliveries WHERE log_id = %s",
            (bad.body["log_id"],),
        ).fetchone()
    assert kept == ("unusable", len(body))


# --- the batch envelope (docs/payloads.md, "BATCH") -----------------------------------------


async def test_through_http_one_request_one_commit(db_dsn: str, tenant: str) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    async with serving(receiver_config(db_dsn)) as endpoint:
        reply = await endpoint.post(
            envelope(
                tenant, upsert(None, rec(a, 1, title="a")), upsert(None, rec(b, 1, title="b"))
            ),
            delivery_id="http-env",
        )
    assert reply.status == 200, reply.body
    assert reply.body["counts"] == {"applied": 2}
    with psycopg.connect(db_dsn) as c:
        assert {k: r["title"] for k, r in rows(c, tenant).items()} == {a: "a", b: "b"}


# --- database faults, injected by replacing apply_webhook in this test's database ---------


def replace_apply(dsn: str, fail_first: int, sqlstate: str, delay: float = 0) -> None:
    """apply_webhook raises `sqlstate` on its first `fail_first` calls, then answers."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("CREATE SEQUENCE IF NOT EXISTS public.test_apply_calls")
        c.execute(
            f"""
            CREATE OR REPLACE FUNCTION optiqoflow.apply_webhook(p_payload jsonb, p_delivery_id text DEFAULT NULL)
            RETURNS jsonb LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_sleep({delay});
                IF nextval('public.test_apply_calls') <= {fail_first} THEN
                    RAISE EXCEPTION 'injected fault' USING ERRCODE = '{sqlstate}';
                END IF;
                RETURN jsonb_build_object('status', 'applied', 'table', 'zones', 'rows', 1, 'log_id', 0);
            END $$
            """
        )


def apply_calls(dsn: str) -> int:
    with psycopg.connect(dsn) as c:
        row = c.execute("SELECT last_value FROM public.test_apply_calls").fetchone()
        assert row is not None
        return int(row[0])


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
async def test_serialization_failure_and_deadlock_are_retried(
    live: Endpoint, sqlstate: str
) -> None:
    replace_apply(live.dsn, fail_first=2, sqlstate=sqlstate)
    reply = await live.post(zone_payload(str(uuid.uuid4())))
    assert (reply.status, reply.body["status"]) == (200, "applied")
    assert apply_calls(live.dsn) == 3


async def test_retries_give_up_with_503(live: Endpoint) -> None:
    replace_apply(live.dsn, fail_first=100, sqlstate="40001")
    reply = await live.post(zone_payload(str(uuid.uuid4())))
    assert reply.status == 503
    assert reply.headers["Retry-After"] == "7"
    assert apply_calls(live.dsn) == 4  # the call and three retries


@pytest.mark.parametrize(
    ("sqlstate", "status"),
    [
        ("55P03", 503),  # lock timeout
        ("57014", 503),  # statement cancelled
        ("57P01", 503),  # admin shutdown
        ("53300", 503),  # too many connections
        ("08006", 503),
        ("40003", 503),
        ("25006", 503),  # read-only: a standby mid-failover
        ("XX000", 500),
        ("42883", 500),  # raised inside apply_webhook: a bug, not the sender's fault
        ("P0001", 500),
    ],
)
async def test_database_errors_map_by_sqlstate(live: Endpoint, sqlstate: str, status: int) -> None:
    replace_apply(live.dsn, fail_first=100, sqlstate=sqlstate)
    reply = await live.post(zone_payload(str(uuid.uuid4())))
    assert reply.status == status
    if status == 503:
        assert reply.headers["Retry-After"] == "7"
    else:
        assert reply.body == {"error": "internal error"}
    assert apply_calls(live.dsn) == 1  # only 40001 / 40P01 are retried


@pytest.mark.parametrize("sqlstate", ["22P02", "22P05"])
async def test_jsonb_input_errors_become_unusable_422(live: Endpoint, sqlstate: str) -> None:
    replace_apply(live.dsn, fail_first=100, sqlstate=sqlstate)
    body = json.dumps(zone_payload(str(uuid.uuid4()))).encode()
    reply = await live.post(body)
    assert reply.status == 422
    assert "jsonb" in reply.body["error"]
    row = log_row(live.dsn, reply.body["log_id"])
    assert (row["outcome"], bytes(row["raw_body"])) == ("unusable", body)


async def test_unexpected_answer_is_500(live: Endpoint) -> None:
    with psycopg.connect(live.dsn, autocommit=True) as c:
        c.execute(
            """CREATE OR REPLACE FUNCTION optiqoflow.apply_webhook(p_payload jsonb, p_delivery_id text DEFAULT NULL)
               RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"status": "maybe"}'::jsonb $$"""
        )
    reply = await live.post(zone_payload(str(uuid.uuid4())))
    assert (reply.status, reply.body) == (500, {"error": "internal error"})


async def test_pool_exhausted_is_503(db_dsn: str) -> None:
    replace_apply(db_dsn, fail_first=0, sqlstate="00000", delay=1.5)
    async with serving(receiver_config(db_dsn, pool_max=1, pool_timeout=0.3)) as ep:
        slow = asyncio.create_task(ep.post(zone_payload(str(uuid.uuid4()))))
        await asyncio.sleep(0.3)
        waiting = await ep.post(zone_payload(str(uuid.uuid4())))
        assert waiting.status == 503
        assert waiting.headers["Retry-After"] == "7"
        assert (await slow).status == 200


def test_transient_is_decided_by_sqlstate_class() -> None:
    for state, transient in [
        ("08001", True),
        ("40001", True),
        ("53100", True),
        ("57P03", True),
        ("55P03", True),
        ("55006", False),
        ("22012", False),
        ("23505", False),
        ("XX000", False),
    ]:
        error = psycopg.errors.lookup(state)("message text does not matter")
        assert is_transient(error) is transient, state
    assert is_transient(psycopg.OperationalError("connection refused"))
    assert not is_transient(psycopg.InterfaceError("bug"))
