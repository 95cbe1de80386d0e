"""`optiqoflow serve`: run the receiver, with an embedded PostgreSQL when DATABASE_URL
is not set."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from dataclasses import replace
from types import FrameType
from typing import Any

from aiohttp import web

from operations.embedded import DataFolder
from operations.errors import CommandError, UsageError
from receiver.app import WEBHOOK_PATH, make_app, runner_options
from receiver.config import ENVIRONMENT, Config, ConfigError
from receiver.logs import JsonLogFormatter, redacted

log = logging.getLogger("optiqoflow.receiver")


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def bind(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to every address of `host` (as aiohttp's TCPSite would bind them),
    not listening yet: the port is ours before anything else starts, and a client that
    comes early is refused rather than left waiting. CommandError when it is taken."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(addresses):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as e:
        for sock in sockets:
            sock.close()
        raise CommandError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    return sockets


def _where(sockets: list[socket.socket]) -> str:
    names = []
    for sock in sockets:
        host, port = sock.getsockname()[:2]
        names.append(f"http://{f'[{host}]' if ':' in host else host}:{port}{WEBHOOK_PATH}")
    return ", ".join(names)


def serve(config: Config, host: str, port: int) -> None:
    """Run the receiver until SIGTERM/SIGINT.

    The port is bound first: a busy port stops it before anything else happens.
    Without DATABASE_URL: the embedded PostgreSQL of OPTIQOFLOW_DATA_DIR (kept across
    restarts), started (or taken over, when a receiver that was killed left it running),
    migrated to head, and stopped again on the way out; a second receiver on the same
    data folder is refused. With DATABASE_URL the database is served as it is:
    migrating it is `optiqoflow migrate`'s job, with a role that may run DDL; /readyz
    says 503 until it is at head."""
    # before aiohttp installs its own handlers: SIGTERM must still run the finally below
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    folder: DataFolder | None = None
    sockets: list[socket.socket] = []
    try:
        dsn = config.database_url
        if dsn is None:
            folder = DataFolder(config.data_dir / "pgdata", "serve")
            folder.claim_for_receiver()
        sockets = bind(host, port)
        if dsn is None:
            assert folder is not None
            dsn = _embedded(folder)
        else:
            log.info("database %s", redacted(dsn), extra={"fields": {"dsn": redacted(dsn)}})
        web.run_app(
            make_app(replace(config, database_url=dsn)),
            sock=sockets,
            # run_app calls `print` once every socket accepts: that is when we listen
            print=lambda *_: log.info("receiver listening on %s", _where(sockets)),
            handle_signals=True,
            **runner_options(config),
        )
        log.info("receiver stopped")
    finally:
        for sock in sockets:
            sock.close()
        if folder is not None:
            became = folder.close()
            if became == "stopped":
                log.info("embedded PostgreSQL stopped")
            elif became == "in use":
                log.info(
                    "embedded PostgreSQL left running: other optiqoflow commands are using "
                    "it, and the last of them stops it"
                )


def _embedded(folder: DataFolder) -> str:
    """Start (or take over) the folder's server and migrate it; its DSN."""
    from optiqoflow_db import migrate  # alembic is only needed here

    found = folder.open(create=True)
    if found.was_running:
        before = found.started_by
        if before is None or not before.alive:
            why = f"left running by {before}, which is gone" if before else "already running"
        else:
            why = f"running for {before}"
        log.warning(
            "embedded PostgreSQL in %s was %s: this receiver takes it over and stops it "
            "when it stops",
            folder.pgdata,
            why,
            extra={"fields": {"data_dir": str(folder.pgdata)}},
        )
    dsn = found.server.dsn
    log.info(
        "embedded PostgreSQL ready at %s (psql '%s'), data in %s",
        dsn,
        dsn,
        folder.pgdata,
        extra={"fields": {"dsn": dsn, "data_dir": str(folder.pgdata)}},
    )
    migrate.upgrade(dsn)
    log.info("embedded PostgreSQL migrated to head")
    return dsn


def _serve_command(args: argparse.Namespace) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    try:
        config = Config.from_env(os.environ)
    except ConfigError as e:
        print(f"optiqoflow serve: {e}", file=sys.stderr)
        return 2
    serve(config, args.host, args.port)
    return 0


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="run the webhook receiver",
        description="Run the webhook receiver (POST /api/optiqo-webhook).",
        epilog="environment:\n"
        + "\n".join(
            f"  {v.name} (default {v.default})\n      {v.description}" for v in ENVIRONMENT
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    p.set_defaults(func=_serve_command)
