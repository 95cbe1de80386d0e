"""Property: whatever arrives at the endpoint, the answer is one of the statuses
docs/payloads.md lists ("HTTP statuses"), never a 500 (real loopback HTTP, real
database, real signatures)."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from receiver.app import WEBHOOK_PATH
from tests.helpers import zone_payload
from tests.http_helpers import SECRET, receiver_config, serving, signed_headers

# with a healthy database, nothing else is a right answer (503 would be a fault here)
EXPECTED = {200, 400, 401, 413, 415, 422}


@pytest.fixture
def port(db_dsn: str) -> Iterator[int]:
    """The receiver in a thread of its own, so the test can be a plain hypothesis test."""
    ports: list[int] = []
    started, stop = threading.Event(), threading.Event()

    async def run() -> None:
        async with serving(receiver_config(db_dsn, max_body_bytes=2048)) as ep:
            ports.append(ep.port)
            started.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    assert started.wait(30)
    yield ports[0]
    stop.set()
    thread.join(30)


_json_text = st.text(alphabet='{}[]":,\\u0aeEdD81.-tn \n', max_size=60).map(str.encode)
_payloads = st.builds(
    lambda kind, table, name, extra: json.dumps(
        {**zone_payload(str(uuid.uuid4()), name=name), "type": kind, "table": table, **extra}
    ).encode(),
    st.sampled_from(["INSERT", "UPDATE", "DELETE", "FULL_SYNC", "insert", "MERGE", ""]),
    st.sampled_from(["zone_categories", "site_rooms", "nope", "_of_x", "a" * 70]),
    st.text(max_size=12),
    st.dictionaries(
        st.sampled_from(
            ["occurred_at", "event_id", "offset", "records", "old_record", "tenant_id"]
        ),
        st.one_of(
            st.none(), st.integers(), st.text(max_size=8), st.lists(st.integers(), max_size=2)
        ),
        max_size=2,
    ),
)
_bodies = st.one_of(_payloads, _payloads, st.binary(max_size=200), _json_text, st.just(b"x" * 3000))
_header_bytes = st.binary(max_size=60).map(lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F))
_signing = st.sampled_from(
    ["plain", "plain", "standard", "standard", "none", "plain-wrong", "standard-old", "garbage"]
)


def request(port: int, body: bytes, headers: list[tuple[str, bytes]]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("POST", WEBHOOK_PATH, skip_accept_encoding=True)
        conn.putheader("Content-Length", str(len(body)))
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.read()
    except (ConnectionResetError, BrokenPipeError):
        return 413, b""  # refused before the whole (oversized) body was sent
    finally:
        conn.close()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=_bodies,
    signing=_signing,
    garbage=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "x-webhook-signature",
                    "webhook-signature",
                    "webhook-id",
                    "webhook-timestamp",
                    "x-webhook-id",
                ]
            ),
            _header_bytes,
        ),
        max_size=3,
    ),
    encoding=st.sampled_from([None] * 6 + ["gzip", "identity"]),
)
def test_every_answer_is_in_the_contract(
    port: int, body: bytes, signing: str, garbage: list[tuple[str, bytes]], encoding: str | None
) -> None:
    headers: list[tuple[str, bytes]] = []
    if signing == "garbage":
        headers += garbage
    elif signing != "none":
        scheme, secret, ts = {
            "plain": ("plain", SECRET, None),
            "plain-wrong": ("plain", SECRET + "x", None),
            "standard": ("standard", SECRET, None),
            "standard-old": ("standard", SECRET, int(time.time()) - 3600),
        }[signing]
        signed = signed_headers(body, scheme, secret, timestamp=ts)
        headers += [(k, v.encode()) for k, v in signed.items() if k != "Content-Type"]
    if encoding:
        headers.append(("Content-Encoding", encoding.encode()))

    status, answer = request(port, body, headers)
    event(f"HTTP {status}")  # the mix: pytest --hypothesis-show-statistics
    assert status in EXPECTED, (status, answer)
    if status == 401:
        assert json.loads(answer) == {"error": "invalid signature"}
    if status in (400, 422) and answer.startswith(b"{"):
        parsed: dict[str, Any] = json.loads(answer)
        assert "error" in parsed
    if signing in ("plain", "standard") and not encoding and len(body) <= 2048:
        assert status != 401  # a right signature always gets past verification
