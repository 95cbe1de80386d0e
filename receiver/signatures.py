"""Webhook signatures: Optiqo's plain scheme and the Standard Webhooks scheme.

Both are checked on the raw body bytes, against the current secret and every previous
one, and compared in constant time on bytes. Anything missing, malformed or wrong is one
answer, "invalid": the verdict's `reason` is for logs and metrics, never for the sender.

Which scheme: a request that carries `webhook-signature` is judged by the Standard
Webhooks scheme alone; otherwise by `x-webhook-signature`. Standard Webhooks accepts a
request when any well-formed `v1,<base64>` entry of `webhook-signature` matches, whatever
the other entries are, as the reference verifiers do (the `standardwebhooks` package is
the tests' oracle).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Sequence
from typing import NamedTuple

from multidict import MultiMapping

from receiver.config import standard_webhooks_key

PLAIN_HEADER = "x-webhook-signature"
STANDARD_ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"

_HEX_SHA256 = re.compile(r"(?:sha256=)?([0-9a-fA-F]{64})", re.IGNORECASE | re.ASCII)
_TIMESTAMP = re.compile(r"[0-9]{1,15}", re.ASCII)
_VERSIONED = re.compile(r"(v[0-9]+[a-z]*),(\S+)", re.ASCII)
_MAX_ID_BYTES = 255
_DIGEST_BYTES = hashlib.sha256().digest_size


class Verdict(NamedTuple):
    ok: bool
    scheme: str  # "plain" | "standard" | "none"
    reason: str  # "ok" | "missing" | "malformed" | "mismatch" | "timestamp"


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, "sha256")  # one call into OpenSSL


def _hmac_of_parts(key: bytes, prefix: bytes, body: bytes) -> bytes:
    """HMAC-SHA256 of prefix + body, without copying the body."""
    mac = hmac.new(key, prefix, hashlib.sha256)
    mac.update(body)
    return mac.digest()


def _single(headers: MultiMapping[str], name: str) -> str | None:
    """The header's value when it is present exactly once; None when absent.
    Raises ValueError when it is repeated."""
    values = headers.getall(name, [])
    if len(values) > 1:
        raise ValueError(f"{name} repeated")
    return values[0] if values else None


def _header_bytes(value: str) -> bytes:
    """The bytes the sender put on the wire (aiohttp decodes headers as UTF-8 with
    surrogateescape). Raises UnicodeEncodeError for text that came from nowhere."""
    return value.encode("utf-8", "surrogateescape")


class Verifier:
    def __init__(self, secrets: Sequence[str], tolerance_seconds: int = 300) -> None:
        if not secrets:
            raise ValueError("at least one secret is needed")
        self._plain_keys = tuple(s.encode() for s in secrets)
        self._standard_keys = tuple(standard_webhooks_key(s) for s in secrets)
        self._tolerance = tolerance_seconds

    def verify(self, headers: MultiMapping[str], body: bytes, now: float | None = None) -> Verdict:
        try:
            if STANDARD_SIGNATURE_HEADER in headers:
                return self._verify_standard(headers, body, time.time() if now is None else now)
            if PLAIN_HEADER in headers:
                return self._verify_plain(headers, body)
        except ValueError:  # a repeated header, text that was not on the wire
            scheme = "standard" if STANDARD_SIGNATURE_HEADER in headers else "plain"
            return Verdict(False, scheme, "malformed")
        return Verdict(False, "none", "missing")

    def _verify_plain(self, headers: MultiMapping[str], body: bytes) -> Verdict:
        value = _single(headers, PLAIN_HEADER) or ""
        match = _HEX_SHA256.fullmatch(value)
        if match is None:
            return Verdict(False, "plain", "malformed")
        given = bytes.fromhex(match.group(1))
        for key in self._plain_keys:
            if hmac.compare_digest(_hmac(key, body), given):
                return Verdict(True, "plain", "ok")
        return Verdict(False, "plain", "mismatch")

    def _verify_standard(self, headers: MultiMapping[str], body: bytes, now: float) -> Verdict:
        msg_id = _single(headers, STANDARD_ID_HEADER)
        timestamp = _single(headers, STANDARD_TIMESTAMP_HEADER)
        signatures = _single(headers, STANDARD_SIGNATURE_HEADER)
        if not msg_id or timestamp is None or signatures is None:
            return Verdict(False, "standard", "missing")
        id_bytes = _header_bytes(msg_id)
        if len(id_bytes) > _MAX_ID_BYTES or _TIMESTAMP.fullmatch(timestamp) is None:
            return Verdict(False, "standard", "malformed")

        candidates = _v1_digests(signatures)
        if not candidates:
            return Verdict(False, "standard", "malformed")

        if abs(now - int(timestamp)) > self._tolerance:
            return Verdict(False, "standard", "timestamp")

        prefix = b"%s.%s." % (id_bytes, timestamp.encode())
        for key in self._standard_keys:
            expected = _hmac_of_parts(key, prefix, body)
            if any(hmac.compare_digest(expected, c) for c in candidates):
                return Verdict(True, "standard", "ok")
        return Verdict(False, "standard", "mismatch")


def _v1_digests(signatures: str) -> list[bytes]:
    """The digests of the well-formed `v1,<base64>` entries of a `webhook-signature`
    value, as the reference verifiers read it: entries are separated by single spaces,
    and any other entry (another version such as v1a, bad base64, another length,
    anything else) is skipped, not held against the ones beside it. The base64 must be
    the canonical encoding of a 32-byte digest, which is what the reference libraries
    compare, as text."""
    digests: list[bytes] = []
    for entry in signatures.split(" "):
        match = _VERSIONED.fullmatch(entry)
        if match is None or match.group(1) != "v1":
            continue
        try:
            digest = base64.b64decode(match.group(2), validate=True)
        except ValueError:  # binascii.Error, or text that is not ASCII
            continue
        if len(digest) == _DIGEST_BYTES and base64.b64encode(digest) == match.group(2).encode():
            digests.append(digest)
    return digests


def sign_plain(secret: str, body: bytes) -> str:
    """The `x-webhook-signature` value for a body (tests, tools, a sender in Python)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign_standard(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value (one `v1,` entry) for a body."""
    signed = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
    digest = _hmac(standard_webhooks_key(secret), signed)
    return "v1," + base64.b64encode(digest).decode()
