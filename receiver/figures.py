"""The database's own figures on /metrics: `optiqoflow.health_metrics()`, read at scrape
time and kept for MAX_AGE seconds, so that however often /metrics is scraped the
database answers at most one such query per MAX_AGE.

The figures carry no label per tenant. They are omitted from /metrics (never a 500) while
the database cannot give them: unreachable, not migrated, or every connection taken by
deliveries (the query never waits for a connection a delivery could have: it takes a
free slot of the gate or none; the last figures are kept meanwhile, at most STALE_AFTER
seconds).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import psycopg
from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from receiver.database import Connection, Gate

log = logging.getLogger("optiqoflow.receiver")

FIGURES_SQL = "SELECT optiqoflow.health_metrics()::text"
MAX_AGE = 5.0  # seconds figures are served again without asking the database
STALE_AFTER = 60.0  # figures older than this are omitted
TIMEOUT = 1.0  # seconds a scrape waits for a connection


class DatabaseFigures:
    def __init__(self, max_age: float | None = None) -> None:
        self.max_age = MAX_AGE if max_age is None else max_age
        self._values: dict[str, float] | None = None
        self._fetched_at = -math.inf  # when _values were read
        self._tried_at = -math.inf  # when the database was last asked (answered or not)
        self._lock = asyncio.Lock()
        self._failing: str | None = None  # why the last attempt failed (logged once)

    def current(self) -> Mapping[str, float] | None:
        """The figures to export now, or None."""
        if self._values is None or time.monotonic() - self._fetched_at > STALE_AFTER:
            return None
        return self._values

    async def refresh(
        self, pool: AsyncConnectionPool[Connection] | None, gate: Gate, timeout: float
    ) -> None:
        """Ask the database again when it was last asked more than max_age ago. Scrapes
        that come meanwhile wait for that answer, then share it."""
        if pool is None or self._asked_lately():
            return
        async with self._lock:  # a scrape storm: one query, the others wait for it
            if self._asked_lately():
                return
            if not gate.try_acquire():  # every connection is a delivery's: keep the last ones
                return
            try:
                async with pool.connection(timeout=min(TIMEOUT, timeout)) as conn:
                    cursor = await conn.execute(FIGURES_SQL)
                    row = await cursor.fetchone()
                    conn.answered_at = time.monotonic()
                self._values = _numbers(json.loads(row[0]) if row and row[0] else {})
                self._fetched_at = time.monotonic()
                if self._failing is not None:
                    log.info("database figures for /metrics are back")
                    self._failing = None
            except (psycopg.Error, ValueError) as e:
                self._values = None
                why = getattr(e, "sqlstate", None) or e.__class__.__name__
                if why != self._failing:
                    log.warning(
                        "database figures left out of /metrics: optiqoflow.health_metrics() "
                        "failed (%s)",
                        why,
                    )
                    self._failing = why
            finally:
                self._tried_at = time.monotonic()
                gate.release()

    def _asked_lately(self) -> bool:
        return time.monotonic() - self._tried_at < self.max_age


def _numbers(value: Any) -> dict[str, float]:
    """The numeric entries of health_metrics()'s answer."""
    if not isinstance(value, dict):
        raise ValueError("optiqoflow.health_metrics() did not answer an object")
    return {
        key: float(v)
        for key, v in value.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


FIGURES = web.AppKey("database_figures", DatabaseFigures)
