"""The README's Python quick start, type-checked with `mypy --strict` by the test command."""

from __future__ import annotations

import asyncio
import sys

import ringkv
import ringkv.asyncio


def merge(siblings: list[bytes]) -> bytes:
    """Resolves concurrent versions of a cart: the union of their items."""
    return b",".join(sorted({item for s in siblings for item in s.split(b",") if item}))


def sync_demo(seeds: list[str]) -> None:
    with ringkv.Client(seeds, resolver=merge) as kv:
        kv.put("cart:alice", b"milk")
        cart = kv.get("cart:alice")
        kv.put("cart:alice", b"milk,eggs", context=cart.context)
        print("sync:", kv.get("cart:alice").value)
        try:
            kv.get("cart:alice", r=9)
        except ringkv.InvalidArgument as e:
            print("refused:", e)


async def async_demo(seeds: list[str]) -> None:
    async with ringkv.asyncio.Client(seeds, resolver=merge) as kv:
        await kv.put_many({f"user:{i}": str(i).encode() for i in range(10)})
        users = await kv.get_many(f"user:{i}" for i in range(10))
        print("asyncio:", sorted(r.value or b"" for r in users.values()))


if __name__ == "__main__":
    addresses = sys.argv[1:] or ["127.0.0.1:7401"]
    sync_demo(addresses)
    asyncio.run(async_demo(addresses))
