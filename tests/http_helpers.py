"""Shared by the tests that go through HTTP: a receiver on a loopback port, a signed
client, raw requests for what aiohttp's client will not send. The payloads they post are
built with tests/helpers.py (rec, upsert, zone_payload, ...)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from receiver.app import WEBHOOK_PATH, make_app, runner_options
from receiver.config import Config
from receiver.signatures import sign_plain, sign_standard

SECRET = "receiver-test-secret"
OLD_SECRET = "whsec_" + "b2xkLXNlY3JldC1rZXktYnl0ZXM="  # base64 of b"old-secret-key-bytes"


def receiver_config(dsn: str, **overrides: Any) -> Config:
    values: dict[str, Any] = {
        "webhook_secret": SECRET,
        "previous_secrets": (OLD_SECRET,),
        "database_url": dsn,
        "pool_min": 0,
        "pool_max": 4,
        "pool_timeout": 2.0,
        "read_timeout": 5.0,
        "retry_after": 7,
    }
    values.update(overrides)
    return Config(**values)


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Endpoint:
    port: int
    session: aiohttp.ClientSession
    dsn: str

    def url(self, path: str = WEBHOOK_PATH) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def post(
        self,
        body: bytes | dict[str, Any],
        *,
        scheme: str | None = "plain",
        secret: str = SECRET,
        headers: dict[str, str] | None = None,
        delivery_id: str | None = None,
    ) -> Reply:
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        h = signed_headers(raw, scheme, secret, delivery_id)
        h.update(headers or {})
        async with self.session.post(self.url(), data=raw, headers=h) as r:
            return Reply(r.status, await _json(r), dict(r.headers))

    async def get(self, path: str) -> Reply:
        async with self.session.get(self.url(path)) as r:
            return Reply(r.status, await _json(r), dict(r.headers))


def plain_delivery_id(delivery_id: str, body: bytes | dict[str, Any]) -> str:
    """The delivery id the database gets for a delivery verified by the plain scheme:
    bound to the body it came with (docs/payloads.md, "The delivery id")."""
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    return f"{delivery_id}#{hashlib.sha256(raw).hexdigest()}"


def metric(text: str, name: str) -> float:
    """The value of one sample (`name` with its labels, as printed) in Prometheus text;
    0 when absent."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def _json(r: aiohttp.ClientResponse) -> Any:
    text = await r.text()
    try:
        return json.loads(text)
    except ValueError:
        return text


def signed_headers(
    body: bytes,
    scheme: str | None,
    secret: str = SECRET,
    delivery_id: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    h = {"Content-Type": "application/json"}
    if scheme == "plain":
        h["x-webhook-signature"] = sign_plain(secret, body)
        if delivery_id:
            h["x-webhook-id"] = delivery_id
    elif scheme == "standard":
        msg_id = delivery_id or f"msg_{uuid.uuid4().hex}"
        ts = int(time.time()) if timestamp is None else timestamp
        h.update(
            {
                "webhook-id": msg_id,
                "webhook-timestamp": str(ts),
                "webhook-signature": sign_standard(secret, msg_id, ts, body),
            }
        )
    return h


@contextlib.asynccontextmanager
async def serving(config: Config) -> AsyncIterator[Endpoint]:
    """The receiver app on 127.0.0.1:<free port>, run as `optiqoflow serve` runs it."""
    runner = web.AppRunner(make_app(config), **runner_options(config))
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            yield Endpoint(port, session, config.database_url or "")
    finally:
        await runner.cleanup()


async def raw_request(port: int, request: bytes, *, pause: float = 0, then: bytes = b"") -> Reply:
    """Send bytes as they are; read the answer's head and its Content-Length body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        if pause:
            await asyncio.sleep(pause)
        if then:
            writer.write(then)
            await writer.drain()
        return await read_reply(reader)
    finally:
        writer.close()


async def read_reply(reader: asyncio.StreamReader) -> Reply:
    """An HTTP answer's head and its Content-Length body, from a raw connection."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    body = await reader.readexactly(int(headers.get("Content-Length", "0")))
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        parsed = body
    return Reply(int(lines[0].split()[1]), parsed, headers)


@dataclass
class Stalled:
    """A request whose body stops coming: headers sent, the rest never (until closed)."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reply: asyncio.Task[Reply]  # done once the receiver answers


async def stall(port: int, length: int | None, *, sent: bytes = b"") -> Stalled:
    """POST with a Content-Length of `length` (None: chunked) and a wrong signature, of
    which only `sent` arrives; the answer is awaited in the background."""
    head = [
        b"POST " + WEBHOOK_PATH.encode() + b" HTTP/1.1",
        b"Host: 127.0.0.1",
        b"x-webhook-signature: " + b"0" * 64,
        b"Transfer-Encoding: chunked" if length is None else b"Content-Length: %d" % length,
    ]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"\r\n".join(head) + b"\r\n\r\n" + sent)
    await writer.drain()
    return Stalled(reader, writer, asyncio.create_task(read_reply(reader)))


def http_post(
    path: str, headers: list[tuple[bytes, bytes]], body: bytes, length: int | None = None
) -> bytes:
    lines = [b"POST " + path.encode() + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines.append(b"Content-Length: %d" % (len(body) if length is None else length))
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@contextlib.asynccontextmanager
async def counting_listener() -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP port that counts connection attempts and hangs up: a database that must
    never be asked."""
    accepted: list[int] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"postgresql://nobody@127.0.0.1:{port}/nothing?connect_timeout=2", accepted
    finally:
        server.close()
        await server.wait_closed()
