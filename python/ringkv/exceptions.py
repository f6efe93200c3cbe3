"""The exceptions ringkv raises, in one hierarchy under :class:`RingkvError`.

Catch ``RingkvError`` for everything, or a subclass by kind. Where a builtin fits, the class
also subclasses it, so ``except TimeoutError`` and ``except ConnectionError`` work too.
"""

from __future__ import annotations

import builtins
from typing import Any, Dict, Optional, Tuple, cast


class RingkvError(Exception):
    """Base class of every ringkv error."""


class ConnectionError(RingkvError, builtins.ConnectionError):
    """No node could be reached, a connection broke, or the client is closed."""


class TimeoutError(RingkvError, builtins.TimeoutError):
    """The call's deadline passed. ``in_doubt``: a write may have been applied anyway."""

    def __init__(self, message: str, in_doubt: bool = False) -> None:
        super().__init__(message)
        self.in_doubt = in_doubt


class UnavailableError(RingkvError):
    """Too few replicas can be asked for the quorum: ``required`` needed, ``alive`` up.
    Nothing was sent."""

    def __init__(self, message: str, required: int = 0, alive: int = 0) -> None:
        super().__init__(message)
        self.required = required
        self.alive = alive


class QuorumError(RingkvError):
    """Fewer than ``required`` replicas succeeded (``succeeded`` did). ``in_doubt``: the write
    may have been applied on some replicas and may show up in later reads."""

    def __init__(self, message: str, required: int = 0, succeeded: int = 0, in_doubt: bool = False) -> None:
        super().__init__(message)
        self.required = required
        self.succeeded = succeeded
        self.in_doubt = in_doubt


class ProtocolError(RingkvError):
    """A node answered something this client does not understand (version mismatch...)."""


class InvalidArgument(RingkvError, ValueError):
    """The call cannot work as asked (a quorum larger than n, a bad URL, a bad context...)."""


class ContextRequired(RingkvError):
    """A write without a context on a key holding ``siblings`` concurrent values: read it,
    merge them (or pass a resolver) and write with the read's context."""

    def __init__(self, message: str, siblings: int = 0) -> None:
        super().__init__(message)
        self.siblings = siblings


class ServerError(RingkvError):
    """A node refused the request (a key or value over its limit, a full disk...)."""


class BatchError(RingkvError):
    """Some keys of a ``get_many`` could not be read. The others were: ``results`` holds
    their reads, ``errors`` each failed key's own error (a :class:`RingkvError`)."""

    def __init__(self, message: str, results: Dict[Any, Any], errors: Dict[Any, RingkvError]) -> None:
        super().__init__(message)
        self.results = results
        self.errors = errors


Fields = Tuple[Optional[int], Optional[int], Optional[int], Optional[bool], Optional[int]]


def translate(error: BaseException) -> BaseException:
    """Turns the native module's ``NativeError(kind, message, fields)`` into its class."""
    args = tuple(getattr(error, "args", ()))
    if len(args) != 3:
        return error
    kind = cast(str, args[0])
    message = cast(str, args[1])
    required, alive, succeeded, in_doubt, siblings = cast(Fields, args[2])
    if kind == "quorum":
        return QuorumError(message, required or 0, succeeded or 0, bool(in_doubt))
    if kind == "unavailable":
        return UnavailableError(message, required or 0, alive or 0)
    if kind == "timeout":
        return TimeoutError(message, bool(in_doubt))
    if kind == "invalid_argument":
        return InvalidArgument(message)
    if kind == "context_required":
        return ContextRequired(message, siblings or 0)
    if kind == "server":
        return ServerError(message)
    if kind == "connection":
        return ConnectionError(message)
    if kind == "protocol":
        return ProtocolError(message)
    return RingkvError(message)
