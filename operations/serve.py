"""`optiqoflow serve`: run the receiver, with an embedded PostgreSQL when DATABASE_URL
is not set."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from dataclasses import replace
from types import FrameType
from typing import Any

from aiohttp import web

from receiver.app import WEBHOOK_PATH, make_app, runner_options
from receiver.config import ENVIRONMENT, Config, ConfigError
from receiver.logs import JsonLogFormatter, redacted

log = logging.getLogger("optiqoflow.receiver")


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def serve(config: Config, host: str, port: int) -> None:
    """Run the receiver until SIGTERM/SIGINT.

    Without DATABASE_URL: start the embedded PostgreSQL (data in OPTIQOFLOW_DATA_DIR,
    kept across restarts), migrate it to head, and stop it again on the way out. With
    DATABASE_URL the database is served as it is: migrating it is `optiqoflow migrate`'s
    job, with a role that may run DDL; /readyz says 503 until it is at head."""
    from operations.embedded import EmbeddedPostgres, start_embedded

    # before aiohttp installs its own handlers: SIGTERM must still run the finally below
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    embedded: EmbeddedPostgres | None = None
    try:
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
        log.info("receiver listening on http://%s:%d%s", host, port, WEBHOOK_PATH)
        web.run_app(
            make_app(replace(config, database_url=dsn)),
            host=host,
            port=port,
            print=None,
            handle_signals=True,
            **runner_options(config),
        )
        log.info("receiver stopped")
    finally:
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
