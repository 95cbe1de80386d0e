"""The receiver's configuration: read once from the environment and checked at start-up.

`ENVIRONMENT` is the single list of the variables the receiver reads; the README's
configuration table is rendered from it (`environment_table()`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, NoReturn

import psycopg
from psycopg.conninfo import conninfo_to_dict

MIB = 1024 * 1024
CITUS_DELEGATION = ("auto", "on", "off")
# Most deliveries in one group commit: each applied event is a subtransaction with its own
# xid, and a transaction with more than 64 of them overflows PostgreSQL's per-backend
# subxid cache, which makes every snapshot in the cluster more expensive.
MAX_GROUP = 64
STANDARD_SECRET_PREFIX = "whsec_"
_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


class EnvVar(NamedTuple):
    name: str
    default: str
    description: str


ENVIRONMENT: tuple[EnvVar, ...] = (
    EnvVar(
        "OPTIQO_WEBHOOK_SECRET",
        "(required)",
        "Current signing secret. Plain scheme: HMAC key = its UTF-8 bytes as written. "
        "Standard Webhooks scheme: the base64 part after `whsec_`, else its UTF-8 bytes.",
    ),
    EnvVar(
        "OPTIQO_WEBHOOK_PREVIOUS_SECRETS",
        "(none)",
        "Whitespace-separated older secrets still accepted during a rotation, in both schemes.",
    ),
    EnvVar(
        "OPTIQO_MAX_BODY_BYTES",
        str(16 * MIB),
        "Largest accepted request body in bytes (16 MiB); a larger one gets 413 before "
        "any signature check.",
    ),
    EnvVar(
        "OPTIQO_UNAUTHENTICATED_BYTES",
        str(64 * MIB),
        "Most bytes of request bodies over 1 MiB, or chunked, being received at once before "
        "their signature is checked (64 MiB). Each reserves its Content-Length (a chunked one "
        "OPTIQO_MAX_BODY_BYTES) before a byte of it is read, until it has been read and its "
        "signature judged, or it timed out; one that finds no room gets 503 with "
        "`Retry-After`, unread. Bounds what senders without the secret make the receiver "
        "hold. At least OPTIQO_MAX_BODY_BYTES.",
    ),
    EnvVar(
        "OPTIQO_UNAUTHENTICATED_SMALL_BODIES",
        "128",
        "Most request bodies of 1 MiB or less (by Content-Length) being received at once "
        "before their signature is checked; one more gets 503 with `Retry-After`, unread. "
        "Apart from OPTIQO_UNAUTHENTICATED_BYTES, so real-time deliveries are still read "
        "while large bodies hold all of that; together they hold at most this many MiB.",
    ),
    EnvVar(
        "DATABASE_URL",
        "(embedded)",
        "libpq URL (`postgresql://...`) or key=value conninfo of the database; one libpq "
        "cannot parse stops the receiver at start, one that does not answer is retried "
        "(and /readyz says so). Unset: `serve` starts an embedded PostgreSQL in "
        "`$OPTIQOFLOW_DATA_DIR/pgdata` and migrates it, and the operations commands "
        "(`status`, `replay`, `prune`, `psql` ...) use that server.",
    ),
    EnvVar(
        "OPTIQOFLOW_DATA_DIR",
        "./.optiqoflow",
        "Folder of the embedded PostgreSQL's data (kept across restarts); relative to "
        "the working directory.",
    ),
    EnvVar(
        "OPTIQO_READ_TIMEOUT_SECONDS",
        "30",
        "Time allowed to receive the whole request body; a slower body gets 408.",
    ),
    EnvVar(
        "OPTIQO_TIMESTAMP_TOLERANCE_SECONDS",
        "300",
        "Standard Webhooks: largest accepted distance, either way, between "
        "`webhook-timestamp` and the receiver's clock.",
    ),
    EnvVar(
        "OPTIQO_POOL_MIN",
        "2",
        "Database connections kept open; idle ones are handed out most recently used first.",
    ),
    EnvVar("OPTIQO_POOL_MAX", "10", "Most database connections open at once."),
    EnvVar(
        "OPTIQO_POOL_TIMEOUT_SECONDS",
        "5",
        "How long a delivery waits for a free connection (its places in its table's lanes "
        "included) before it gets 503.",
    ),
    EnvVar(
        "OPTIQO_LOCK_TIMEOUT_SECONDS",
        "5",
        "Longest a delivery waits for a lock (a table a dashboard session locked, rows "
        "another transaction holds): past it, nothing of it is committed and it is answered "
        "503 with Retry-After. This bounds each lock wait; before it, a delivery waits at "
        "most the pool timeout for its lanes and a connection.",
    ),
    EnvVar(
        "OPTIQO_TABLE_CONNECTIONS",
        "half of `OPTIQO_POOL_MAX` (at least 1)",
        "Most deliveries to one table (the payload's `table`) holding or waiting for a "
        "connection at once; more wait in that table's lane (within the pool timeout), "
        "then get 503 with Retry-After. So a table that a session keeps locked takes at most "
        "this share of the pool, and deliveries to every other table go on. Each tenant of a "
        "table gets half of this share (at least 1) the same way, so rows of one tenant held "
        "by a session do not hold up the table's other tenants.",
    ),
    EnvVar(
        "OPTIQO_GROUP_COMMIT",
        "1",
        "Group commit: most real-time deliveries applied by one database call and one "
        "commit. 1: every delivery is its own `apply_webhook` call. "
        "Above 1, at most 64: real-time deliveries (INSERT, UPDATE, DELETE) queue, and a "
        "connection applies up to this many queued ones together with "
        "`optiqoflow.apply_webhook_group`, each with its own answer and rows, none answered "
        'before that commit (docs/group-commit.md).',
    ),
    EnvVar(
        "OPTIQO_RETRY_AFTER_SECONDS",
        "5",
        "Value of the `Retry-After` header sent with every 503.",
    ),
    EnvVar(
        "OPTIQO_LARGE_BODY_PARSES",
        "2",
        "Most signed bodies over 1 MiB whose JSON is checked at the same time; more wait "
        "their turn. Checking holds the parsed body, ~4x its size (a 16 MiB body: ~60 MiB "
        "more), so this bounds what large deliveries add to the receiver's peak memory.",
    ),
    EnvVar(
        "OPTIQO_CITUS_DELEGATION",
        "auto",
        "Citus only. `auto`: where `optiqoflow.apply_tenant_webhook` is a Citus distributed "
        "function (after `optiqoflow.distribute()`; checked once per database connection), a "
        "delivery that names its tenant is sent to the worker that owns the tenant, and only "
        "when that answers `coordinator_required` (a schema change is needed) is it repeated as "
        "`apply_webhook` on the coordinator. `on`: that two-step path without the check. `off`: "
        "always the one `apply_webhook` call. On plain PostgreSQL `auto` is that one call.",
    ),
    EnvVar(
        "OPTIQO_SHUTDOWN_TIMEOUT_SECONDS",
        "30",
        "On SIGTERM/SIGINT: how long in-flight deliveries may take to finish.",
    ),
)


class ConfigError(Exception):
    """The environment does not describe a receiver we can start."""


@dataclass(frozen=True)
class Config:
    webhook_secret: str
    previous_secrets: tuple[str, ...] = ()
    max_body_bytes: int = 16 * MIB
    unauthenticated_bytes: int = 64 * MIB
    unauthenticated_small_bodies: int = 128
    database_url: str | None = None
    data_dir: Path = Path(".optiqoflow")
    read_timeout: float = 30.0
    timestamp_tolerance: int = 300
    pool_min: int = 2
    pool_max: int = 10
    pool_timeout: float = 5.0
    lock_timeout: float = 5.0
    table_connections: int | None = None  # None: half of pool_max, at least 1 (table_share)
    retry_after: int = 5
    large_body_parses: int = 2
    group_commit: int = 1
    shutdown_timeout: float = 30.0
    citus_delegation: str = "auto"

    @property
    def table_share(self) -> int:
        """Most deliveries to one table holding or waiting for a connection (receiver.lanes)."""
        return self.table_connections or max(1, self.pool_max // 2)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every accepted secret, the current one first."""
        return (self.webhook_secret, *self.previous_secrets)

    @classmethod
    def from_env(cls, env: Mapping[str, str], cwd: Path | None = None) -> Config:
        secret = env.get("OPTIQO_WEBHOOK_SECRET", "")
        if not secret:
            raise ConfigError(
                "OPTIQO_WEBHOOK_SECRET is not set: the receiver refuses to start without "
                "the secret that signs Optiqo's webhooks.\n"
                "  export OPTIQO_WEBHOOK_SECRET='the secret configured at the sender'"
            )
        previous = tuple(env.get("OPTIQO_WEBHOOK_PREVIOUS_SECRETS", "").split())
        for s in (secret, *previous):
            check_secret(s)
        data_dir = Path(env.get("OPTIQOFLOW_DATA_DIR") or ".optiqoflow")
        if not data_dir.is_absolute():
            data_dir = (cwd or Path.cwd()) / data_dir
        config = cls(
            webhook_secret=secret,
            previous_secrets=previous,
            max_body_bytes=_int(env, "OPTIQO_MAX_BODY_BYTES", 16 * MIB, minimum=1),
            unauthenticated_bytes=_int(env, "OPTIQO_UNAUTHENTICATED_BYTES", 64 * MIB, minimum=1),
            unauthenticated_small_bodies=_int(
                env, "OPTIQO_UNAUTHENTICATED_SMALL_BODIES", 128, minimum=1
            ),
            database_url=_database_url(env),
            data_dir=data_dir,
            read_timeout=_float(env, "OPTIQO_READ_TIMEOUT_SECONDS", 30.0),
            timestamp_tolerance=_int(env, "OPTIQO_TIMESTAMP_TOLERANCE_SECONDS", 300, minimum=1),
            pool_min=_int(env, "OPTIQO_POOL_MIN", 2, minimum=0),
            pool_max=_int(env, "OPTIQO_POOL_MAX", 10, minimum=1),
            pool_timeout=_float(env, "OPTIQO_POOL_TIMEOUT_SECONDS", 5.0),
            lock_timeout=_float(env, "OPTIQO_LOCK_TIMEOUT_SECONDS", 5.0),
            table_connections=_int(env, "OPTIQO_TABLE_CONNECTIONS", 1, minimum=1)
            if env.get("OPTIQO_TABLE_CONNECTIONS")
            else None,
            retry_after=_int(env, "OPTIQO_RETRY_AFTER_SECONDS", 5, minimum=1),
            large_body_parses=_int(env, "OPTIQO_LARGE_BODY_PARSES", 2, minimum=1),
            group_commit=_int(env, "OPTIQO_GROUP_COMMIT", 1, minimum=1, maximum=MAX_GROUP),
            shutdown_timeout=_float(env, "OPTIQO_SHUTDOWN_TIMEOUT_SECONDS", 30.0),
            citus_delegation=_choice(env, "OPTIQO_CITUS_DELEGATION", CITUS_DELEGATION),
        )
        if config.unauthenticated_bytes < config.max_body_bytes:
            raise ConfigError(
                f"OPTIQO_UNAUTHENTICATED_BYTES ({config.unauthenticated_bytes}) is smaller than "
                f"OPTIQO_MAX_BODY_BYTES ({config.max_body_bytes}): the largest body could "
                "never be received"
            )
        if config.table_share > config.pool_max:
            raise ConfigError(
                f"OPTIQO_TABLE_CONNECTIONS ({config.table_share}) is larger than "
                f"OPTIQO_POOL_MAX ({config.pool_max})"
            )
        if config.pool_min > config.pool_max:
            raise ConfigError(
                f"OPTIQO_POOL_MIN ({config.pool_min}) is larger than "
                f"OPTIQO_POOL_MAX ({config.pool_max})"
            )
        return config


def _database_url(env: Mapping[str, str]) -> str | None:
    """DATABASE_URL when libpq can parse it (unset or empty: None, the embedded database).

    Only the form is checked here: a well-formed URL of a database that does not answer
    is retried by the pool and reported by /readyz. The message never repeats the value,
    nor libpq's complaint about it (either may hold a password)."""
    raw = env.get("DATABASE_URL", "")
    if not raw:
        return None
    scheme = _URL_SCHEME.match(raw)
    if scheme is not None and scheme.group(1).lower() not in ("postgresql", "postgres"):
        _bad_database_url(f"uses the scheme {scheme.group(1)}://, not postgresql://")
    try:
        params = conninfo_to_dict(raw)
    except psycopg.Error:
        _bad_database_url("is neither a postgresql:// URL nor key=value conninfo libpq can read")
    for port in str(params.get("port") or "").split(","):
        if port.strip() and not (port.strip().isdecimal() and 0 < int(port) < 65536):
            _bad_database_url("names a port that is not a number from 1 to 65535")
    return raw


def _bad_database_url(what: str) -> NoReturn:
    raise ConfigError(
        f"DATABASE_URL {what}: set it to a libpq connection string, e.g. "
        "DATABASE_URL='postgresql://user@host:5432/dbname' (or unset it for the embedded "
        "PostgreSQL)"
    )


def standard_webhooks_key(secret: str) -> bytes:
    """The Standard Webhooks HMAC key of a secret: the base64 part of `whsec_...`, else
    the secret's UTF-8 bytes. Raises ValueError when a `whsec_` secret is not base64."""
    if not secret.startswith(STANDARD_SECRET_PREFIX):
        return secret.encode()
    encoded = secret[len(STANDARD_SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError("the part after whsec_ is not base64") from e
    if not key:
        raise ValueError("the part after whsec_ is empty")
    return key


def check_secret(secret: str) -> None:
    try:
        secret.encode()
        standard_webhooks_key(secret)
    except (UnicodeError, ValueError) as e:
        raise ConfigError(
            f"a webhook secret is not usable ({e}); set OPTIQO_WEBHOOK_SECRET and "
            "OPTIQO_WEBHOOK_PREVIOUS_SECRETS to the secrets exactly as the sender has them"
        ) from None


def _int(
    env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int | None = None
) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is below the smallest allowed value {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={value} is above the largest allowed value {maximum}")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (case-insensitive); the first when unset."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return choices[0]
    if raw not in choices:
        raise ConfigError(f"{name}={raw!r} is not one of {', '.join(choices)}")
    return raw


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{name}={raw!r} must be a positive number of seconds")
    return value


def environment_table() -> str:
    """ENVIRONMENT as a Markdown table, for the README."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    lines += [f"| `{v.name}` | {v.default} | {v.description} |" for v in ENVIRONMENT]
    return "\n".join(lines)
