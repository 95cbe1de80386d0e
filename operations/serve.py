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
    Without DATABASE_URL: start the embedded PostgreSQL (data in OPTIQOFLOW_DATA_DIR,
    kept across restarts), migrate it to head, and stop it again on the way out. With
    DATABASE_URL the database is served as it is: migrating it is `optiqoflow migrate`'s
    job, with a role that may run DDL; /readyz says 503 until it is at head."""
    from operations.embedded import EmbeddedPostgres, start_embedded

    # before aiohttp installs its own handlers: SIGTERM must still run the finally below
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    embedded: EmbeddedPostgres | None = None
    sockets: list[socket.socket] = []
    try:
        sockets = bind(host, port)
        dsn = config.database_url
        if dsn is None:
            from optiqoflow_db import migrate  # alembic is only needed here

            pgdata = (config.data_dir / "pgdata").resolve()
            already_running = EmbeddedPostgres(pgdata, 0).is_running()
            server = start_embedded(pgdata)
            embedded = None if already_running else server  # not ours to stop otherwise
            dsn = server.dsn
            log.info(
                "embedded PostgreSQL ready at %s (psql '%s'), data in %s",
                dsn,
                dsn,
                pgdata,
                extra={"fields": {"dsn": dsn, "data_dir": str(pgdata)}},
            )
            migrate.upgrade(dsn)
            log.info("embedded PostgreSQL migrated to head")
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
        if embedded is not None:
            embedded.stop()
            log.info("embedded PostgreSQL stopped")


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
