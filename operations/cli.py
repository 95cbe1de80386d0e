"""The `optiqoflow` command line.

Each sub-command lives in the module that owns the behaviour and registers itself
here through `register(subparsers)`, so this file stays a table of contents.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from operations import chartdeps, migrate, ops, serve
from simulator import converge, simulate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optiqoflow",
        description="Sync the Optiqo platform into PostgreSQL over signed webhooks.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (serve, migrate, chartdeps, simulate, converge, ops):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
