"""What an operator sees when a command fails as expected: one line on stderr,
`optiqoflow <command>: <what happened>`, and an exit code (docs/operations.md, "Exit
codes"). `operations.cli.main` prints them; anything not listed here is a bug and keeps
its traceback.
"""

from __future__ import annotations

import psycopg

OK = 0
PROBLEM = 1  # the command ran and found a problem, or what it asked for was refused
USAGE = 2  # a bad option or value, or a configuration to fix first
UNREACHABLE = 3  # the database could not be reached

# the database has not got our objects: a schema, table or function is missing
NOT_MIGRATED = frozenset({"3F000", "42P01", "42883"})
# connection exceptions, invalid authorization, no such database, server shutting down
_UNREACHABLE_CLASSES = ("08", "28", "3D", "57P")

HINT_MAX = 200  # a longer HINT is left out of the one line


class CommandError(Exception):
    """An expected failure: its message (one line) is printed, the process exits `code`."""

    code = PROBLEM

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class UsageError(CommandError):
    """A command-line value or setting that cannot be used (exit 2)."""

    code = USAGE


def one_line(text: str) -> str:
    """Several lines (libpq's messages have two) as one."""
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())


def database_error(exc: BaseException) -> psycopg.Error | None:
    """The psycopg error behind `exc`: itself, SQLAlchemy's `orig` (migrations run through
    SQLAlchemy), or an explicit cause."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, psycopg.Error):
            return current
        orig = getattr(current, "orig", None)
        if isinstance(orig, psycopg.Error):
            return orig
        current = current.__cause__
    return None


def explain(exc: BaseException, command: str) -> tuple[int, str] | None:
    """(exit code, one line) for a database error an operator can act on; None for
    anything else (a bug: let its traceback show)."""
    e = database_error(exc)
    if e is None:
        return None
    state = e.sqlstate or ""
    if (not state and isinstance(e, psycopg.OperationalError)) or state.startswith(
        _UNREACHABLE_CLASSES
    ):
        return UNREACHABLE, one_line(str(e))
    text = one_line(e.diag.message_primary or str(e))
    if state in NOT_MIGRATED and command != "migrate":
        return USAGE, f"the database is not migrated ({text}): run `optiqoflow migrate`"
    if state.startswith("OF") or state.startswith("22") or state == "42501":
        hint = e.diag.message_hint
        if hint and len(hint) <= HINT_MAX and "\n" not in hint:
            text += f" [{state}]; hint: {hint}"
        else:
            text += f" [{state}]"
        return PROBLEM, text
    return None
