"""Signature verification, both schemes, without HTTP (receiver.signatures)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import string
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from receiver.signatures import Verifier, sign_plain, sign_standard

# Standard Webhooks' published vector (standard-webhooks/standard-webhooks,
# libraries/*/tests: "test_sign_function")
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TIMESTAMP = 1614265330
SW_PAYLOAD = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
# the same with its last digest byte changed (the libraries' "invalid signature" test)
SW_WRONG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="

SECRET = "current-secret-\u00e9"  # non-ASCII on purpose: the key is its UTF-8 bytes
OLD = "old-secret"
BODY = b'{"type":"INSERT","table":"zone_categories"}'
NOW = 1_700_000_000


def headers(**kv: str) -> CIMultiDict[str]:
    return CIMultiDict((k.replace("_", "-"), v) for k, v in kv.items())


def sw_headers(secret: str, body: bytes, ts: int = NOW, msg_id: str = "msg_1") -> CIMultiDict[str]:
    return headers(
        webhook_id=msg_id,
        webhook_timestamp=str(ts),
        webhook_signature=sign_standard(secret, msg_id, ts, body),
    )


verifier = Verifier([SECRET, OLD], tolerance_seconds=300)


# --- Standard Webhooks ------------------------------------------------------------------


def test_published_vector_signs() -> None:
    assert sign_standard(SW_SECRET, SW_ID, SW_TIMESTAMP, SW_PAYLOAD) == SW_SIGNATURE


def test_published_vector_verifies() -> None:
    h = headers(
        webhook_id=SW_ID, webhook_timestamp=str(SW_TIMESTAMP), webhook_signature=SW_SIGNATURE
    )
    assert Verifier([SW_SECRET]).verify(h, SW_PAYLOAD, now=SW_TIMESTAMP).ok
    h["webhook-signature"] = SW_WRONG
    assert Verifier([SW_SECRET]).verify(h, SW_PAYLOAD, now=SW_TIMESTAMP).reason == "mismatch"


def test_published_vector_multi_signature_list() -> None:
    other = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
    listed = " ".join(
        [other, "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=", SW_SIGNATURE, other]
    )
    h = headers(webhook_id=SW_ID, webhook_timestamp=str(SW_TIMESTAMP), webhook_signature=listed)
    assert Verifier([SW_SECRET]).verify(h, SW_PAYLOAD, now=SW_TIMESTAMP).ok


def test_secret_without_whsec_prefix_is_its_utf8_bytes() -> None:
    raw = SW_SECRET.removeprefix("whsec_")
    h = headers(
        webhook_id=SW_ID, webhook_timestamp=str(SW_TIMESTAMP), webhook_signature=SW_SIGNATURE
    )
    assert not Verifier([raw]).verify(h, SW_PAYLOAD, now=SW_TIMESTAMP).ok
    digest = hmac.new(
        raw.encode(), b"%s.%d.%s" % (SW_ID.encode(), SW_TIMESTAMP, SW_PAYLOAD), hashlib.sha256
    )
    h["webhook-signature"] = "v1," + base64.b64encode(digest.digest()).decode()
    assert Verifier([raw]).verify(h, SW_PAYLOAD, now=SW_TIMESTAMP).ok


@pytest.mark.parametrize(
    ("skew", "ok"),
    [(0, True), (300, True), (-300, True), (301, False), (-301, False), (10**6, False)],
)
def test_timestamp_tolerance_both_ways(skew: int, ok: bool) -> None:
    h = sw_headers(SECRET, BODY, ts=NOW + skew)
    verdict = verifier.verify(h, BODY, now=NOW)
    assert verdict.ok is ok
    assert verdict.reason == ("ok" if ok else "timestamp")


def test_tolerance_is_configurable() -> None:
    h = sw_headers(SECRET, BODY, ts=NOW - 20)
    assert not Verifier([SECRET], tolerance_seconds=10).verify(h, BODY, now=NOW).ok
    assert Verifier([SECRET], tolerance_seconds=30).verify(h, BODY, now=NOW).ok


def test_signature_covers_id_timestamp_and_body() -> None:
    h = sw_headers(SECRET, BODY)
    assert verifier.verify(h, BODY, now=NOW).ok
    assert not verifier.verify(h, BODY + b" ", now=NOW).ok
    for name, value in (("webhook-id", "msg_2"), ("webhook-timestamp", str(NOW + 1))):
        changed = h.copy()
        changed[name] = value
        assert verifier.verify(changed, BODY, now=NOW).reason == "mismatch"


def test_standard_scheme_decides_when_its_header_is_present() -> None:
    h = sw_headers("someone-else", BODY)
    h["x-webhook-signature"] = sign_plain(SECRET, BODY)  # valid, but not the scheme in use
    assert not verifier.verify(h, BODY, now=NOW).ok


@pytest.mark.parametrize(
    "mangle",
    [
        {"webhook-id": None},
        {"webhook-timestamp": None},
        {"webhook-id": ""},
        {"webhook-id": "x" * 256},
        {"webhook-id": "msg_\udcff"},  # non-UTF-8 bytes, as aiohttp decodes them
        {"webhook-id": "msg_\ud800"},  # text that no wire ever carried
        {"webhook-timestamp": ""},
        {"webhook-timestamp": "soon"},
        {"webhook-timestamp": "+1700000000"},
        {"webhook-timestamp": "1700000000.0"},
        {"webhook-timestamp": "-1"},
        {"webhook-timestamp": "\uff11\uff17"},  # full-width digits: isdigit(), not ASCII
        {"webhook-timestamp": "9" * 40},
        {"webhook-signature": ""},
        {"webhook-signature": "v1"},
        {"webhook-signature": "v1,"},
        {"webhook-signature": ",abc"},
        {"webhook-signature": "v1,not base64!"},
        {"webhook-signature": "v1,AAAA"},  # base64, but not 32 bytes
        {"webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE"},  # unpadded
        {"webhook-signature": "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},  # no v1
        {"webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\u00e9"},
        {"webhook-signature": "v1,\u00e9\u00e9\u00e9\u00e9"},
    ],
)
def test_malformed_standard_headers_are_refused(mangle: dict[str, str | None]) -> None:
    h = sw_headers(SECRET, BODY)
    for name, value in mangle.items():
        del h[name]
        if value is not None:
            h[name] = value
    verdict = verifier.verify(h, BODY, now=NOW)
    assert not verdict.ok
    assert verdict.scheme == "standard"


def _noncanonical(entry: str) -> str:
    """The same digest in base64 with a padding bit set: decodes alike, reads otherwise."""
    value = entry.removeprefix("v1,")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(value[-2])
    return "v1," + value[:-2] + alphabet[last ^ 1] + "="


# every kind of entry that is not a matching v1 signature
OTHER_ENTRIES = [
    "garbage",
    "v1",
    "v1,",
    ",abc",
    "v1,not base64!",
    "v1,AAAA",  # base64, but not 32 bytes
    "v1," + "A" * 88,  # 64 bytes
    "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",  # asymmetric: not ours to check
    "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",  # well formed, wrong
    "v1,\u00e9\u00e9\u00e9\u00e9",
]


@pytest.mark.parametrize("other", OTHER_ENTRIES)
@pytest.mark.parametrize("first", [True, False], ids=["valid first", "valid last"])
def test_a_matching_entry_is_accepted_whatever_is_beside_it(other: str, first: bool) -> None:
    """The rule of the reference verifiers: accepted when any well-formed v1 entry
    matches; an entry that is malformed, of another version or length is skipped."""
    h = sw_headers(SECRET, BODY)
    valid = h["webhook-signature"]
    h["webhook-signature"] = f"{valid} {other}" if first else f"{other} {valid}"
    assert verifier.verify(h, BODY, now=NOW) == (True, "standard", "ok")


@pytest.mark.parametrize("other", OTHER_ENTRIES)
def test_without_a_matching_entry_it_is_401(other: str) -> None:
    h = sw_headers(SECRET, BODY)
    valid = h["webhook-signature"]
    for entries in ([other], [other, other], [other, _noncanonical(valid)], [valid.rstrip("=")]):
        h["webhook-signature"] = " ".join(entries)
        verdict = verifier.verify(h, BODY, now=NOW)
        assert not verdict.ok, entries
        assert verdict.reason in ("malformed", "mismatch")


# --- the reference implementation as the oracle (the `standardwebhooks` package) -----------

_whsec = st.binary(min_size=1, max_size=64).map(lambda k: "whsec_" + base64.b64encode(k).decode())
_msg_ids = st.text(string.ascii_letters + string.digits + "_-.:", min_size=1, max_size=100)


@settings(max_examples=200, deadline=None)
@given(_whsec, _msg_ids, st.integers(0, 10**11), st.binary(max_size=300))
def test_what_the_reference_library_signs_verifies(
    secret: str, msg_id: str, timestamp: int, body: bytes
) -> None:
    reference = standardwebhooks.Webhook(secret)
    entry = reference.sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body)
    assert sign_standard(secret, msg_id, timestamp, body) == entry
    h = headers(webhook_id=msg_id, webhook_timestamp=str(timestamp), webhook_signature=entry)
    assert Verifier([secret]).verify(h, body, now=timestamp) == (True, "standard", "ok")
    # and a previous secret's signature during a rotation
    assert Verifier(["whsec_" + base64.b64encode(b"new").decode(), secret]).verify(
        h, body, now=timestamp
    ).ok


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["valid", "wrong", "unpadded", "noncanonical", *OTHER_ENTRIES]),
        min_size=1,
        max_size=5,
    ),
    st.sampled_from([" ", "  ", "\t"]),
    st.binary(max_size=100),
)
def test_mixed_and_reordered_entries_are_judged_as_the_reference_judges_them(
    kinds: list[str], separator: str, body: bytes
) -> None:
    secret = "whsec_" + base64.b64encode(b"mixed-entries-key").decode()
    other = "whsec_" + base64.b64encode(b"someone-else").decode()
    now = int(time.time())  # the reference verifies against its own clock
    when = datetime.fromtimestamp(now, UTC)
    valid = standardwebhooks.Webhook(secret).sign("msg_mixed", when, body)
    made = {
        "valid": valid,
        "wrong": standardwebhooks.Webhook(other).sign("msg_mixed", when, body),
        "unpadded": valid.rstrip("="),
        "noncanonical": _noncanonical(valid),
    }
    value = separator.join(made.get(k, k) for k in kinds)
    h = {"webhook-id": "msg_mixed", "webhook-timestamp": str(now), "webhook-signature": value}
    try:
        standardwebhooks.Webhook(secret).verify(body, h, json_parse=False)
        reference_ok = True
    except standardwebhooks.WebhookVerificationError:
        reference_ok = False
    ours = Verifier([secret]).verify(CIMultiDict(h), body, now=now)
    assert ours.ok is reference_ok, (kinds, separator, ours)
    if " " in separator:  # entries apart: accepted exactly when a valid one is there
        assert ours.ok is ("valid" in kinds)


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_repeated_standard_header_is_refused(name: str) -> None:
    h = sw_headers(SECRET, BODY)
    h.add(name, h[name])
    assert verifier.verify(h, BODY, now=NOW).reason == "malformed"


# --- plain scheme -------------------------------------------------------------------------


def test_plain_lowercase_hex() -> None:
    value = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert value == sign_plain(SECRET, BODY)
    assert verifier.verify(headers(x_webhook_signature=value), BODY).ok


@pytest.mark.parametrize("form", ["sha256={}", "{upper}", "sha256={upper}", "SHA256={}"])
def test_plain_prefix_and_upper_case(form: str) -> None:
    digest = sign_plain(SECRET, BODY)
    value = form.format(digest, upper=digest.upper())
    assert verifier.verify(headers(x_webhook_signature=value), BODY).ok


def test_plain_secret_is_used_as_written() -> None:
    # a whsec_ secret keys the plain scheme with its own UTF-8 bytes, not decoded
    v = Verifier([SW_SECRET])
    assert v.verify(headers(x_webhook_signature=sign_plain(SW_SECRET, BODY)), BODY).ok
    decoded = hmac.new(base64.b64decode(SW_SECRET[6:]), BODY, hashlib.sha256).hexdigest()
    assert not v.verify(headers(x_webhook_signature=decoded), BODY).ok


def test_plain_wrong_secret_or_body() -> None:
    assert (
        verifier.verify(headers(x_webhook_signature=sign_plain("nope", BODY)), BODY).reason
        == "mismatch"
    )
    assert not verifier.verify(
        headers(x_webhook_signature=sign_plain(SECRET, BODY)), BODY + b"\n"
    ).ok


@pytest.mark.parametrize(
    "value",
    [
        "",
        "sha256=",
        "0" * 63,
        "0" * 65,
        "g" * 64,
        "sha1=" + "0" * 64,
        "sha256 =" + "0" * 64,
        " " + "0" * 63,
        "\u00e9" * 64,  # non-ASCII: compare_digest on str would raise TypeError
        "\uff10" * 64,  # full-width zeros
        "\udcff" * 64,  # non-UTF-8 bytes as aiohttp decodes them
        "\ud800" * 64,
    ],
)
def test_malformed_plain_header_is_refused(value: str) -> None:
    verdict = verifier.verify(headers(x_webhook_signature=value), BODY)
    assert (verdict.ok, verdict.scheme, verdict.reason) == (False, "plain", "malformed")


def test_repeated_plain_header_is_refused() -> None:
    h = headers(x_webhook_signature=sign_plain(SECRET, BODY))
    h.add("X-Webhook-Signature", sign_plain(SECRET, BODY))
    assert verifier.verify(h, BODY).reason == "malformed"


def test_no_signature_at_all() -> None:
    assert verifier.verify(headers(), BODY) == (False, "none", "missing")
    assert verifier.verify(headers(webhook_id="a", x_webhook_id="b"), BODY).reason == "missing"


# --- rotation -------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", [SECRET, OLD])
def test_current_and_previous_secrets_verify_in_both_schemes(secret: str) -> None:
    assert verifier.verify(headers(x_webhook_signature=sign_plain(secret, BODY)), BODY).ok
    assert verifier.verify(sw_headers(secret, BODY), BODY, now=NOW).ok


def test_retired_secret_no_longer_verifies() -> None:
    only_new = Verifier([SECRET])
    assert not only_new.verify(headers(x_webhook_signature=sign_plain(OLD, BODY)), BODY).ok
    assert not only_new.verify(sw_headers(OLD, BODY), BODY, now=NOW).ok


def test_whsec_secrets_rotate_too() -> None:
    new = "whsec_" + base64.b64encode(b"k" * 24).decode()
    v = Verifier([new, SW_SECRET])
    h = headers(
        webhook_id=SW_ID, webhook_timestamp=str(SW_TIMESTAMP), webhook_signature=SW_SIGNATURE
    )
    assert v.verify(h, SW_PAYLOAD, now=SW_TIMESTAMP).ok
    assert v.verify(sw_headers(new, BODY), BODY, now=NOW).ok


# --- never an exception ----------------------------------------------------------------------

_names = st.sampled_from(
    ["webhook-id", "webhook-timestamp", "webhook-signature", "x-webhook-signature", "x-other"]
)
_hex = st.text(alphabet="0123456789abcdefABCDEF", min_size=62, max_size=66)
_entry = st.tuples(st.sampled_from(["v1", "v2", "v1a", "", "x"]), st.text("AZaz09+/=", max_size=48))
_values = st.one_of(
    st.text(max_size=120),
    st.tuples(st.sampled_from(["", "sha256=", "SHA256="]), _hex).map("".join),
    st.lists(_entry.map(",".join), min_size=1, max_size=3).map(" ".join),
    st.integers(NOW - 400, NOW + 400).map(str),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_names, _values), max_size=6), st.binary(max_size=200))
def test_any_headers_give_a_verdict_never_an_exception(
    pairs: list[tuple[str, str]], body: bytes
) -> None:
    verdict = verifier.verify(CIMultiDict(pairs), body, now=NOW)
    assert verdict.reason in ("ok", "missing", "malformed", "mismatch", "timestamp")
    assert not verdict.ok  # without the secret nothing verifies
