"""`optiqoflow serve`: placeholder until the receiver lands (issue 2, item 4)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("serve", help="run the webhook receiver")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(func=lambda args: (_ for _ in ()).throw(SystemExit("serve: not built yet")))
