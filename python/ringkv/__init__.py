"""ringkv: a Python client for the ringkv distributed key-value store.

``ringkv.Client`` is synchronous and thread-safe; ``ringkv.asyncio.Client`` has the same
methods as awaitables. Both are thin layers over the Rust SDK, which routes every key to its
replicas, coordinates the quorum and repairs stale replicas.
"""

import atexit

from . import _native
from ._client import Client
from ._common import DEFAULT_BUCKET, TLS, Receipt, Result
from .exceptions import (
    BatchError,
    ConnectionError,
    ContextRequired,
    InvalidArgument,
    ProtocolError,
    QuorumError,
    RingkvError,
    ServerError,
    TimeoutError,
    UnavailableError,
)

__version__ = "0.1.0"

# Before the interpreter finalizes, stop the runtime's threads from calling into Python (a
# thread ended mid-call by finalization would abort the process).
atexit.register(_native._at_exit)

__all__ = [
    "BatchError",
    "DEFAULT_BUCKET",
    "Client",
    "ConnectionError",
    "ContextRequired",
    "InvalidArgument",
    "ProtocolError",
    "QuorumError",
    "Receipt",
    "Result",
    "RingkvError",
    "ServerError",
    "TLS",
    "TimeoutError",
    "UnavailableError",
]
