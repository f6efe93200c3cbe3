"""The synchronous client."""

from __future__ import annotations

from types import TracebackType
from typing import Dict, Iterable, List, Mapping, Optional, Type, Union

from . import _native
from ._common import (
    DEFAULT_BUCKET,
    Key,
    Receipt,
    Resolver,
    Result,
    Settings,
    TLS,
    key_bytes,
    make_result,
    many_results,
    parse_url,
    seed_list,
    value_bytes,
)
from .exceptions import ContextRequired, translate


class Client:
    """A ringkv client: the Rust SDK routes, coordinates quorums and repairs replicas.

    Thread-safe: share one per process. Every call releases the GIL while it waits.
    ``token`` is a client token, for clusters that require one; ``tls`` (a :class:`TLS`)
    connects with TLS. ``context_key`` (bytes) seals the contexts the client hands out, for
    contexts that travel through cookies and forms: one altered or not sealed is refused with
    ``InvalidArgument`` rather than trusted (a forged context could drop writes it never saw).

    >>> with ringkv.Client(["127.0.0.1:7401"]) as kv:   # doctest: +SKIP
    ...     kv.put("k", b"v")
    ...     kv.get("k").value
    """

    def __init__(
        self,
        seeds: Union[str, Iterable[str]],
        *,
        r: Optional[int] = None,
        w: Optional[int] = None,
        pr: Optional[int] = None,
        pw: Optional[int] = None,
        timeout: Optional[float] = None,
        resolver: Optional[Resolver] = None,
        bucket: str = DEFAULT_BUCKET,
        token: Optional[str] = None,
        tls: Optional[TLS] = None,
        context_key: Optional[bytes] = None,
    ) -> None:
        settings = Settings(
            seeds=seed_list(seeds),
            r=r,
            w=w,
            pr=pr,
            pw=pw,
            timeout=timeout,
            token=token,
            tls=tls,
            context_key=context_key,
        )
        self._resolver = resolver
        self._bucket = bucket
        try:
            self._native = settings.connect()
        except _native.NativeError as e:
            raise translate(e) from None

    @classmethod
    def from_url(cls, url: str, *, resolver: Optional[Resolver] = None, bucket: str = DEFAULT_BUCKET) -> "Client":
        """``Client.from_url("ringkv://host:port,host:port/?r=2&w=2&timeout=1.5")``."""
        s = parse_url(url)
        return cls(s.seeds, r=s.r, w=s.w, pr=s.pr, pw=s.pw, timeout=s.timeout, resolver=resolver, bucket=bucket)

    def get(
        self,
        key: Key,
        *,
        r: Optional[int] = None,
        pr: Optional[int] = None,
        timeout: Optional[float] = None,
        resolver: Optional[Resolver] = None,
        write_back: bool = False,
        bucket: Optional[str] = None,
        touch: Optional[float] = None,
    ) -> Result:
        """Reads ``key``. With several siblings, ``resolver`` (this call's or the client's)
        merges them into ``.value``; ``write_back=True`` then writes the merge with the read's
        context, resolving the conflict for everyone. ``touch`` (seconds) is sliding expiry:
        the values read now expire that long from now, on every replica (a write that needs
        ``w`` acknowledgements), without being rewritten; an expired value is not brought back."""
        bucket = bucket or self._bucket
        try:
            siblings, context = self._native.get(bucket, key_bytes(key), r, pr, timeout, touch)
        except _native.NativeError as e:
            raise translate(e) from None
        result = make_result(siblings, context, resolver or self._resolver)
        if write_back and len(siblings) > 1 and result.value is not None:
            self.put(key, result.value, context=result.context, bucket=bucket, timeout=timeout)
        return result

    def put(
        self,
        key: Key,
        value: bytes,
        *,
        context: Optional[bytes] = None,
        w: Optional[int] = None,
        pw: Optional[int] = None,
        timeout: Optional[float] = None,
        overwrite: bool = False,
        bucket: Optional[str] = None,
        dw: Optional[int] = None,
        ttl: Optional[float] = None,
    ) -> Receipt:
        """Writes ``value``; ``context`` (from a read) says which versions it replaces.

        ``w``/``pw`` are the (strict) write quorum, ``dw`` how many replicas must have synced
        the write to disk before it returns. ``overwrite`` replaces every version; without a
        context it first reads ``r`` home replicas strictly (fallbacks are not asked) and raises
        :class:`UnavailableError` when it cannot, since an overwrite stamped where the key's history
        is missing would replace nothing. ``ttl`` (seconds) makes the value expire that long after
        it is written, by the servers' clocks: it then reads as absent on every replica.
        """
        return self._write(key, value_bytes(value), context, w, pw, timeout, overwrite, bucket, dw, ttl)

    def delete(
        self,
        key: Key,
        *,
        context: Optional[bytes] = None,
        w: Optional[int] = None,
        pw: Optional[int] = None,
        timeout: Optional[float] = None,
        bucket: Optional[str] = None,
        dw: Optional[int] = None,
    ) -> Receipt:
        """Deletes ``key``: what ``context`` saw, or (without one) every version.

        With a context the delete is accepted however many home replicas are down. Without
        one, the client first reads ``r`` home replicas strictly and deletes what they hold;
        it raises :class:`UnavailableError` when fewer than ``r`` home replicas are up (a delete
        stamped by a fallback that never saw the key would delete nothing).
        """
        return self._write(key, None, context, w, pw, timeout, False, bucket, dw)

    def get_many(
        self,
        keys: Iterable[Key],
        *,
        r: Optional[int] = None,
        pr: Optional[int] = None,
        timeout: Optional[float] = None,
        resolver: Optional[Resolver] = None,
        bucket: Optional[str] = None,
    ) -> Dict[Key, Result]:
        """Reads several keys at once: one request per node for all of them, not one per key
        (``timeout`` is the whole call's). Each result is what :meth:`get` would have
        returned. If some keys fail, :class:`BatchError` is raised once all are done,
        holding the results of the others and each failed key's error."""
        keys = list(keys)
        try:
            answers = self._native.get_many(
                bucket or self._bucket, [key_bytes(k) for k in keys], r, pr, timeout
            )
        except _native.NativeError as e:
            raise translate(e) from None
        return many_results(keys, answers, resolver or self._resolver)

    def put_many(self, items: Mapping[Key, bytes], **options: object) -> Dict[Key, Receipt]:
        """Writes several keys (without contexts); options as for :meth:`put`."""
        return {key: self.put(key, value, **options) for key, value in items.items()}  # type: ignore[arg-type]

    def flush(self, timeout: float = 5.0) -> bool:
        """Waits up to ``timeout`` seconds for the copies writes still send after their
        quorum (a write returns after ``w`` acknowledgements) and for read repairs; returns
        whether all finished. :meth:`close` calls it."""
        if self._native.closed:
            return True
        try:
            return bool(self._native.flush(timeout))
        except _native.NativeError as e:
            raise translate(e) from None

    def close(self) -> None:
        """Sends what writes still owe (see :meth:`flush`), then closes the connections.
        Idempotent."""
        self.flush()
        self._native.close()

    @property
    def closed(self) -> bool:
        return bool(self._native.closed)

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __getitem__(self, key: Key) -> bytes:
        result = self.get(key)
        if not result.found:
            raise KeyError(key)
        if result.value is None:
            raise KeyError(f"{key!r} has {len(result.siblings)} siblings; use get() with a resolver")
        return result.value

    def __setitem__(self, key: Key, value: bytes) -> None:
        """Sets ``key`` to ``value``, replacing the value it holds (read first, written with the
        read's context). A key holding concurrent siblings is refused with
        :class:`ContextRequired`, as a put without a context is: assigning would silently
        discard all of them but one. Read it, merge, and ``put`` with the read's context."""
        current = self.get(key)
        if len(current.siblings) > 1:
            raise ContextRequired(
                f"{key!r} has {len(current.siblings)} concurrent siblings: read it, merge them "
                "and put with the read's context",
                siblings=len(current.siblings),
            )
        self.put(key, value, context=current.context)

    def __delitem__(self, key: Key) -> None:
        self.delete(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, (bytes, str)):
            return False
        return self.get(key).found

    def _write(
        self,
        key: Key,
        value: Optional[bytes],
        context: Optional[bytes],
        w: Optional[int],
        pw: Optional[int],
        timeout: Optional[float],
        overwrite: bool,
        bucket: Optional[str],
        dw: Optional[int] = None,
        ttl: Optional[float] = None,
    ) -> Receipt:
        try:
            home, fallback, siblings, context = self._native.put(
                bucket or self._bucket, key_bytes(key), value, context, w, pw, timeout, overwrite, dw, ttl
            )
        except _native.NativeError as e:
            raise translate(e) from None
        return Receipt(
            home=list(home), fallback=list(fallback), siblings=list(siblings), context=context
        )


__all__: List[str] = ["Client"]
