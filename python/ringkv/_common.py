"""What the sync and asyncio clients share: results, arguments, URLs, resolvers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple, Union
from urllib.parse import parse_qs, urlsplit

from . import _native
from .exceptions import InvalidArgument

Key = Union[bytes, str]
Resolver = Callable[[List[bytes]], bytes]

DEFAULT_BUCKET = "default"


@dataclass(frozen=True)
class Result:
    """A read. ``siblings``: every concurrent value (usually one). ``value``: the value when
    there is exactly one (or the resolver's merge of several), else None. ``context``: pass it
    to the next write of this key, which then replaces exactly what this read saw."""

    siblings: List[bytes]
    context: bytes
    value: Optional[bytes] = None

    @property
    def found(self) -> bool:
        return bool(self.siblings)


@dataclass(frozen=True)
class Receipt:
    """Who acknowledged a write: node ids of home replicas and of fallbacks standing in. And
    what the write left (Riak's ``return_body``): ``siblings``, the key's live values at the
    replica that stamped it, this write among them, and ``context``, which covers exactly
    those. Write with ``context`` next instead of reading first (merging any other sibling
    in, as after a read): your own last write is then never left beside your next one."""

    home: List[str] = field(default_factory=list)
    fallback: List[str] = field(default_factory=list)
    siblings: List[bytes] = field(default_factory=list)
    context: bytes = b""


def key_bytes(key: Key) -> bytes:
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    raise TypeError(f"keys are bytes or str, not {type(key).__name__}")


def value_bytes(value: object) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"values are bytes, not {type(value).__name__}")


def seed_list(seeds: Union[str, Iterable[str]]) -> List[str]:
    if isinstance(seeds, str):
        seeds = [s for s in seeds.split(",") if s]
    result = list(seeds)
    if not result:
        raise InvalidArgument("at least one seed address (host:port) is required")
    return result


@dataclass(frozen=True)
class TLS:
    """TLS to the nodes: ``ca_file`` (PEM) holds the CA that signed their certificates;
    ``cert_file`` and ``key_file`` are this client's, for nodes that require one (mutual
    TLS); ``server_name`` checks every node's certificate against one name instead of its
    address."""

    ca_file: str
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    server_name: Optional[str] = None

    def _native(self) -> Tuple[str, Optional[str], Optional[str], Optional[str]]:
        return (self.ca_file, self.cert_file, self.key_file, self.server_name)


@dataclass(frozen=True)
class Settings:
    """Client-wide defaults, from keyword arguments or a URL."""

    seeds: List[str]
    r: Optional[int] = None
    w: Optional[int] = None
    pr: Optional[int] = None
    pw: Optional[int] = None
    timeout: Optional[float] = None
    #: A client token, for clusters that require one (never printed: see ``__repr__``).
    token: Optional[str] = field(default=None, repr=False)
    tls: Optional[TLS] = None
    #: The application's key for sealing contexts (never printed): contexts the client hands
    #: out are sealed with it, and a context altered or not sealed is refused.
    context_key: Optional[bytes] = field(default=None, repr=False)

    def _native_args(self) -> Tuple[Any, ...]:
        """The native constructors' arguments, in their order."""
        tls = self.tls._native() if self.tls else None
        return (self.seeds, self.r, self.w, self.pr, self.pw, self.timeout, self.token, tls, self.context_key)

    def connect(self) -> "_native.NativeClient":
        """Connects (blocking, without the GIL)."""
        return _native.NativeClient(*self._native_args())

    def connect_async(self) -> Any:
        """An awaitable resolving to a connected NativeClient."""
        return _native.NativeClient.connect_async(*self._native_args())


def parse_url(url: str) -> Settings:
    """``ringkv://host:port,host:port/?r=2&w=2&timeout=1.5`` into settings."""
    parts = urlsplit(url)
    if parts.scheme != "ringkv":
        raise InvalidArgument(f"a ringkv URL starts with ringkv://, not {url!r}")
    if not parts.netloc:
        raise InvalidArgument(f"no seed address in {url!r}")
    query = {k: v[-1] for k, v in parse_qs(parts.query, strict_parsing=False).items()}
    known = {"r", "w", "pr", "pw", "timeout"}
    unknown = set(query) - known
    if unknown:
        raise InvalidArgument(f"unknown URL parameters {sorted(unknown)} (known: {sorted(known)})")
    def number(name: str) -> Optional[int]:
        return int(query[name]) if name in query else None

    try:
        r, w, pr, pw = number("r"), number("w"), number("pr"), number("pw")
        timeout = float(query["timeout"]) if "timeout" in query else None
    except ValueError as e:
        raise InvalidArgument(f"bad number in {url!r}: {e}") from None
    return Settings(seeds=seed_list(parts.netloc), r=r, w=w, pr=pr, pw=pw, timeout=timeout)


def make_result(siblings: Sequence[bytes], context: bytes, resolver: Optional[Resolver]) -> Result:
    siblings = list(siblings)
    if len(siblings) == 1:
        value: Optional[bytes] = siblings[0]
    elif len(siblings) > 1 and resolver is not None:
        value = value_bytes(resolver(siblings))
    else:
        value = None
    return Result(siblings=siblings, context=context, value=value)


def many_results(
    keys: Sequence[Key],
    answers: Sequence[Tuple[Optional[Tuple[List[bytes], bytes]], Optional[Tuple[str, str, Any]]]],
    resolver: Optional[Resolver],
) -> "dict[Key, Result]":
    """A batched read's answers, key by key; raises :class:`BatchError` (holding the keys
    that were read) if any key failed."""
    from .exceptions import BatchError, RingkvError, translate

    results: "dict[Key, Result]" = {}
    errors: "dict[Key, RingkvError]" = {}
    for key, (read, error) in zip(keys, answers):
        if read is not None:
            results[key] = make_result(read[0], read[1], resolver)
        else:
            failure = translate(_native.NativeError(*(error or ("error", "no answer", (None,) * 5))))
            errors[key] = failure if isinstance(failure, RingkvError) else RingkvError(str(failure))
    if errors:
        first = next(iter(errors.values()))
        raise BatchError(f"{len(errors)} of {len(keys)} keys could not be read (first: {first})", results, errors)
    return results
