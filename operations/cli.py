"""The `optiqoflow` command line.

Each sub-command lives in the module that owns the behaviour and registers itself
here through `register(subparsers)`, so this file stays a table of contents.

An expected failure is one line on stderr, `optiqoflow <command>: <what happened>`, and
an exit code from operations.errors (docs/operations.md, "Exit codes"); main() turns the
exceptions into them. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from optiqoflow_db.migrate import MigrationError

from operations import chartdeps, database, errors, migrate, openapi, ops, privacy, serve
from simulator import converge, simulate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optiqoflow",
        description="Sync the Optiqo platform into PostgreSQL over signed webhooks.",
        epilog="exit codes: 0 done; 1 the command found a problem or was refused; "
        "2 usage or configuration; 3 the database could not be reached",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (serve, migrate, chartdeps, simulate, converge, ops, privacy, database, openapi):
        module.register(sub)
    return parser


def _command(args: argparse.Namespace) -> str:
    """The sub-command's name as typed: `status`, `charts deps`."""
    nested = [v for k, v in vars(args).items() if k.endswith("_command") and isinstance(v, str)]
    return " ".join([args.command, *nested])


def _say(command: str, message: str) -> None:
    print(f"optiqoflow {command}: {errors.one_line(message)}", file=sys.stderr)


def _stdout_gone() -> None:
    """The reader of our output went away (`optiqoflow status --json | head -1`): send
    what is left to /dev/null, so that the flush at exit does not fail again (Python's
    documentation, signal module, "Note on SIGPIPE")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # not a real file (captured by a test): nothing will be flushed to it
    finally:
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = _command(args)
    try:
        result: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return result
    except BrokenPipeError:
        _stdout_gone()
        return errors.PROBLEM
    except KeyboardInterrupt:
        return 130  # 128 + SIGINT, as a shell reports a process Ctrl-C ended
    except errors.CommandError as e:
        _say(command, str(e))
        return e.code
    except MigrationError as e:
        _say(command, str(e))
        return errors.PROBLEM
    except Exception as e:
        explained = errors.explain(e, command)
        if explained is None:
            raise
        code, message = explained
        _say(command, message)
        return code


if __name__ == "__main__":
    sys.exit(main())
