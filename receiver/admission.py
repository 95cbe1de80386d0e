"""Room for request bodies that are received before their signature is checked.

Until its signature holds, a body belongs to nobody known: anyone who can open a
connection can announce 16 MiB and send it slowly, and the bytes that arrive are held
while it does. So a request is admitted before a byte of its body is read, in one of two
ways:

- A body that announces more than SMALL_BODY_BYTES (1 MiB), or comes chunked (its size
  unknown until it ends), reserves its Content-Length (a chunked one, the largest body
  allowed) out of OPTIQO_UNAUTHENTICATED_BYTES.
- A body that announces 1 MiB or less takes one of OPTIQO_UNAUTHENTICATED_SMALL_BODIES
  places. Large bodies never take these, so while stalled large bodies hold every byte
  of the budget, real-time deliveries are still read, verified and applied.

A request that finds no room is answered 503 with Retry-After (`answers.overloaded`)
without reading its body. The room is given back when the body has been read and its
signature judged, or when reading it ended otherwise: a stalled body holds it for at
most OPTIQO_READ_TIMEOUT_SECONDS (then 408), a sender that hangs up gives it back at
once. Everything here runs on the event loop, between awaits: no lock is needed.
"""

from __future__ import annotations

from types import TracebackType

SMALL_BODY_BYTES = 1024 * 1024
MIB = 1024 * 1024


class NoRoom(Exception):
    """No room to receive this body now; the message says why (for the log line)."""


class Admission:
    def __init__(self, budget_bytes: int, small_bodies: int, unknown_length_bytes: int) -> None:
        """`budget_bytes` for bodies over 1 MiB or chunked, each chunked one counted as
        `unknown_length_bytes`; `small_bodies` places for the others."""
        self.budget_bytes = budget_bytes
        self.small_bodies = small_bodies
        self.unknown_length_bytes = unknown_length_bytes
        self.reserved_bytes = 0  # held by admitted large or chunked bodies
        self.small_admitted = 0  # places held by admitted small bodies

    def admit(self, content_length: int | None, chunked: bool) -> Ticket:
        """Room for one body (by its headers), to be given back with the ticket.
        Raises NoRoom when there is none now."""
        if chunked or (content_length or 0) > SMALL_BODY_BYTES:
            size = self.unknown_length_bytes if chunked else content_length or 0
            if self.reserved_bytes + size > self.budget_bytes:
                kind = "a chunked body" if chunked else f"a body of {_mib(size)}"
                raise NoRoom(
                    f"{kind} before its signature: {_mib(self.reserved_bytes)} of "
                    f"OPTIQO_UNAUTHENTICATED_BYTES {_mib(self.budget_bytes)} in use"
                )
            self.reserved_bytes += size
            return Ticket(self, size)
        if self.small_admitted >= self.small_bodies:
            raise NoRoom(
                "a body of 1 MiB or less before its signature: all "
                f"OPTIQO_UNAUTHENTICATED_SMALL_BODIES={self.small_bodies} in use"
            )
        self.small_admitted += 1
        return Ticket(self, None)

    def _give_back(self, size: int | None) -> None:
        if size is None:
            self.small_admitted -= 1
        else:
            self.reserved_bytes -= size


class Ticket:
    """One admitted body's room; given back once, by `release` or at the end of a
    `with` block."""

    def __init__(self, admission: Admission, size: int | None) -> None:
        self._admission = admission
        self.size = size  # bytes reserved; None: a small body's place
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._admission._give_back(self.size)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def _mib(size: int) -> str:
    return f"{size / MIB:.1f} MiB"
