"""Reading a request's body and what the receiver needs of it, before and after the
signature: bounded bytes in, the delivery id, and the strict JSON check.

The body is read whole, at most OPTIQO_MAX_BODY_BYTES within the read timeout, and never
inflated (a compressed body is refused: the signature covers the bytes as sent). After
the signature holds, `checked` parses it strictly (`receiver.jsonguard`) only to learn
its `type` and tenant for the log line and the Citus route: the database gets the bytes.
A body over PARSE_IN_THREAD_BYTES is checked in a worker thread (`ThreadCheck`) while the
database applies it in an open transaction, which commits only once the check passed.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, TypeVar

from aiohttp import hdrs, web
from aiohttp.http import HttpProcessingError
from multidict import MultiMapping

from receiver import answers, citus
from receiver.answers import Outcome
from receiver.jsonguard import Unusable, parse_payload
from receiver.signatures import STANDARD_ID_HEADER

DELIVERY_ID_HEADERS = (STANDARD_ID_HEADER, "x-webhook-id")
MAX_DELIVERY_ID_CHARS = 255
PARSE_IN_THREAD_BYTES = 1024 * 1024  # larger bodies are parsed off the event loop

T = TypeVar("T")
Checked = tuple[dict[str, Any], str | None]  # the payload's labels, its canonical tenant


def refused_unread(request: web.Request, limit: int) -> Outcome | None:
    """The outcome that refuses the body from the request's headers alone (415, 413)."""
    encoding = _coding(request)
    if encoding is not None:
        return answers.unsupported_encoding(encoding)
    if (request.content_length or 0) > limit:
        return answers.too_large(limit)
    return None


def chunked(request: web.Request) -> bool:
    """A body whose length is not announced (Transfer-Encoding: chunked)."""
    return request.content_length is None and request.body_exists


async def read(request: web.Request, limit: int, timeout: float) -> bytes | Outcome:
    """The whole body, or the outcome that refuses it (415, 413, 408, 400)."""
    refused = refused_unread(request, limit)
    if refused is not None:
        return refused
    try:
        if request.content.is_eof():  # all of it has arrived: reading it cannot wait
            body = await _read_at_most(request, limit)
        else:
            async with asyncio.timeout(timeout):
                body = await _read_at_most(request, limit)
    except TimeoutError:
        return answers.read_timeout(timeout)
    except (ConnectionError, HttpProcessingError):  # the sender hung up, or broke the framing
        return answers.incomplete()
    return answers.too_large(limit) if body is None else body


def _coding(request: web.Request) -> str | None:
    """A content or transfer coding that compresses the body, if the request has one."""
    for header, plain in (
        (hdrs.CONTENT_ENCODING, ("identity",)),
        (hdrs.TRANSFER_ENCODING, ("identity", "chunked")),
    ):
        for value in request.headers.getall(header, []):
            for token in (t.strip() for t in value.lower().split(",")):
                if token and token not in plain:
                    return f"{header} {token!r}"
    return None


async def _read_at_most(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None as soon as it grows past `limit` bytes."""
    body = bytearray()
    while chunk := await request.content.readany():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def delivery_id(headers: MultiMapping[str]) -> str | None:
    """`webhook-id`, else `x-webhook-id`, else None; a malformed one is Unusable (400).
    MAX_DELIVERY_ID_CHARS applies to the header as sent (`bound_to_body` adds 65)."""
    name, values = delivery_id_header(headers)
    if not values:
        return None
    value = values[0]
    # isprintable() also refuses the surrogates aiohttp makes of non-UTF-8 bytes
    if len(values) > 1 or not 0 < len(value) <= MAX_DELIVERY_ID_CHARS or not value.isprintable():
        raise Unusable(
            f"malformed {name} header (once, 1 to {MAX_DELIVERY_ID_CHARS} printable characters)"
        )
    return value


def bound_to_body(delivery_id: str | None, body: bytes) -> str | None:
    """The delivery id of a request verified by the plain scheme, as the database gets
    it: `<id>#<lowercase hex SHA-256 of the body>`.

    The plain signature covers the body, not the id header, so anyone holding one signed
    body could post it under the ids of deliveries still to come, and make those
    `duplicate`s. Bound to the body, a repeat of the same bytes under the same id is still
    a duplicate, and another body under that id is another delivery."""
    if delivery_id is None:
        return None
    return f"{delivery_id}#{hashlib.sha256(body).hexdigest()}"


def delivery_id_header(headers: MultiMapping[str]) -> tuple[str, list[str]]:
    """The header that names the delivery, and its values (none when no header does)."""
    for name in DELIVERY_ID_HEADERS:
        if values := headers.getall(name, []):
            return name, values
    return DELIVERY_ID_HEADERS[-1], []


def checked(body: bytes) -> Checked:
    """Strict JSON check of the body; what the log line needs of the payload, and the
    tenant it names (canonical; the Citus path routes by it). The database gets the
    body's bytes, so the parsed tree is dropped right here."""
    payload = parse_payload(body)
    labels = {key: label(payload.get(key)) for key in ("type", "tenant_id", "table")}
    return labels, citus.payload_tenant(payload)


def label(value: Any) -> str | None:
    """A short printable string from a payload or answer, else None (logs, metrics)."""
    if isinstance(value, str) and 0 < len(value) <= 64 and value.isprintable():
        return value
    return None


def done(value: T) -> asyncio.Future[T]:
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


class ThreadCheck:
    """The strict check of a large body in a worker thread, started when `start` is first
    called: by the apply step once its transaction is open, just before the body is
    sent. A thread started earlier holds the GIL while the event loop takes a
    connection, opens the transaction and sends the body, and delays each of those steps
    by up to the interpreter's switch interval."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._task: asyncio.Future[Checked] | None = None
        self.future: asyncio.Future[Checked] = asyncio.get_running_loop().create_future()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(asyncio.to_thread(checked, self._body))
            self._task.add_done_callback(self._settle)

    async def finished(self) -> None:
        """Wait for the thread (not only for the future, which a cancelled delivery may
        have cancelled): its parsed tree is then gone."""
        if self._task is not None:
            await asyncio.wait([self._task])
        if self.future.done() and not self.future.cancelled():
            self.future.exception()  # retrieved: no asyncio warning for a refusal seen above

    def _settle(self, task: asyncio.Future[Checked]) -> None:
        if self.future.done():  # cancelled with its delivery
            if not task.cancelled():
                task.exception()  # retrieved
        elif task.cancelled():
            self.future.cancel()
        elif (error := task.exception()) is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(task.result())
