"""What the handlers of one receiver app share, under aiohttp AppKeys."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from receiver.admission import Admission
from receiver.config import Config
from receiver.database import Freshness, Gate
from receiver.groupcommit import GroupCommit
from receiver.lanes import Lanes
from receiver.metrics import Metrics
from receiver.signatures import Verifier


@dataclass
class Receiver:
    """Built by make_app; the pool is added under POOL when the app starts."""

    config: Config
    verifier: Verifier
    metrics: Metrics
    large_parses: asyncio.Semaphore
    freshness: Freshness
    gate: Gate
    admission: Admission  # room for bodies before their signature is checked
    lanes: Lanes  # a share of the pool per table (OPTIQO_TABLE_CONNECTIONS)
    tenant_lanes: Lanes  # half of that per tenant and table
    group: GroupCommit | None = None  # OPTIQO_GROUP_COMMIT > 1
    expected_revision: str | None = None


RECEIVER = web.AppKey("receiver", Receiver)
POOL = web.AppKey("pool", AsyncConnectionPool)
