"""The asyncio client: the same names and signatures as :class:`ringkv.Client`, awaitable.

It connects on first use (or in ``async with``). Cancelling a task that awaits a call drops
the Rust future: its requests are abandoned and their answers, if any arrive, are discarded.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Dict, Iterable, List, Mapping, Optional, Type, Union

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
from .exceptions import ConnectionError, translate


class Client:
    """An asyncio ringkv client. Share one per event loop."""

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
        self._settings = Settings(
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
        self._native: Optional[_native.NativeClient] = None
        self._connecting: Optional[asyncio.Lock] = None
        self._closed = False

    @classmethod
    def from_url(cls, url: str, *, resolver: Optional[Resolver] = None, bucket: str = DEFAULT_BUCKET) -> "Client":
        """``Client.from_url("ringkv://host:port,host:port/?r=2&w=2&timeout=1.5")``."""
        s = parse_url(url)
        return cls(s.seeds, r=s.r, w=s.w, pr=s.pr, pw=s.pw, timeout=s.timeout, resolver=resolver, bucket=bucket)

    async def _client(self) -> _native.NativeClient:
        if self._closed:
            raise ConnectionError("the client is closed")
        if self._native is not None:
            return self._native
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._native is None:
                try:
                    self._native = await self._settings.connect_async()
                except _native.NativeError as e:
                    raise translate(e) from None
        return self._native

    async def get(
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
        """See :meth:`ringkv.Client.get`."""
        bucket = bucket or self._bucket
        native = await self._client()
        try:
            siblings, context = await native.get_async(
                bucket, key_bytes(key), r, pr, timeout, touch
            )
        except _native.NativeError as e:
            raise translate(e) from None
        result = make_result(siblings, context, resolver or self._resolver)
        if write_back and len(siblings) > 1 and result.value is not None:
            await self.put(key, result.value, context=result.context, bucket=bucket, timeout=timeout)
        return result

    async def put(
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
        """See :meth:`ringkv.Client.put`."""
        return await self._write(
            key, value_bytes(value), context, w, pw, timeout, overwrite, bucket, dw, ttl
        )

    async def delete(
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
        """See :meth:`ringkv.Client.delete`."""
        return await self._write(key, None, context, w, pw, timeout, False, bucket, dw)

    async def get_many(
        self,
        keys: Iterable[Key],
        *,
        r: Optional[int] = None,
        pr: Optional[int] = None,
        timeout: Optional[float] = None,
        resolver: Optional[Resolver] = None,
        bucket: Optional[str] = None,
    ) -> Dict[Key, Result]:
        """See :meth:`ringkv.Client.get_many`."""
        keys = list(keys)
        native = await self._client()
        try:
            answers = await native.get_many_async(
                bucket or self._bucket, [key_bytes(k) for k in keys], r, pr, timeout
            )
        except _native.NativeError as e:
            raise translate(e) from None
        return many_results(keys, answers, resolver or self._resolver)

    async def put_many(self, items: Mapping[Key, bytes], **options: Any) -> Dict[Key, Receipt]:
        """Writes several keys concurrently (without contexts); options as for :meth:`put`."""
        keys = list(items)
        receipts = await asyncio.gather(*(self.put(key, items[key], **options) for key in keys))
        return dict(zip(keys, receipts))

    async def flush(self, timeout: float = 5.0) -> bool:
        """See :meth:`ringkv.Client.flush`."""
        if self._native is None or self._closed:
            return True
        try:
            return bool(await self._native.flush_async(timeout))
        except _native.NativeError as e:
            raise translate(e) from None

    async def close(self) -> None:
        """Sends what writes still owe (see :meth:`flush`), then closes the connections.
        Idempotent."""
        await self.flush()
        self._closed = True
        if self._native is not None:
            self._native.close()

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> "Client":
        await self._client()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()

    async def _write(
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
        native = await self._client()
        try:
            home, fallback, siblings, context = await native.put_async(
                bucket or self._bucket, key_bytes(key), value, context, w, pw, timeout, overwrite, dw, ttl
            )
        except _native.NativeError as e:
            raise translate(e) from None
        return Receipt(
            home=list(home), fallback=list(fallback), siblings=list(siblings), context=context
        )


__all__: List[str] = ["Client"]
