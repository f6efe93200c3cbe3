from __future__ import annotations

import asyncio
import time
import uuid

import pytest

import ringkv
import ringkv.asyncio


async def test_round_trip_and_context_manager(cluster) -> None:  # type: ignore[no-untyped-def]
    key = f"a-{uuid.uuid4().hex}"
    async with ringkv.asyncio.Client(cluster.addrs) as c:
        receipt = await c.put(key, b"hello")
        assert len(receipt.home) >= 2
        result = await c.get(key)
        assert result.value == b"hello"
        await c.delete(key, context=result.context)
        assert not (await c.get(key)).found
    assert c.closed
    with pytest.raises(ringkv.ConnectionError):
        await c.get(key)


async def test_a_thousand_concurrent_operations(cluster) -> None:  # type: ignore[no-untyped-def]
    prefix = uuid.uuid4().hex
    c = ringkv.asyncio.Client(cluster.addrs)
    items = {f"{prefix}-{i}": str(i).encode() for i in range(1000)}
    await c.put_many(items)  # 1,000 writes in flight at once
    results = await c.get_many(items)  # then 1,000 reads
    assert {k: r.value for k, r in results.items()} == items
    # The copies beyond w of those writes are sent by the time flush says so.
    assert await c.flush(10.0) is True
    await c.close()
    await c.close()
    assert await c.flush() is True


async def test_same_exceptions_as_the_sync_client(cluster) -> None:  # type: ignore[no-untyped-def]
    async with ringkv.asyncio.Client.from_url("ringkv://" + ",".join(cluster.addrs)) as c:
        with pytest.raises(ringkv.InvalidArgument):
            await c.get("k", r=4)
    with pytest.raises(ringkv.ConnectionError):
        await ringkv.asyncio.Client(["127.0.0.1:1"]).get("k")


async def test_cancelling_a_task_cancels_the_call(own_cluster) -> None:  # type: ignore[no-untyped-def]
    async with ringkv.asyncio.Client(own_cluster.addrs) as c:
        await c.put("k", b"v")
        own_cluster.pause(1)
        task = asyncio.create_task(c.get("k", r=3, timeout=30))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - started < 5, "cancellation waited for the call"
        own_cluster.resume(1)
        assert (await c.get("k")).value == b"v", "the client still works after a cancellation"


async def test_get_many_reads_in_batches_and_reports_failed_keys_apart(cluster) -> None:  # type: ignore[no-untyped-def]
    prefix = uuid.uuid4().hex
    async with ringkv.asyncio.Client(cluster.addrs) as c:
        items = {f"{prefix}-{i}": str(i).encode() for i in range(50)}
        await c.put_many(items)
        results = await c.get_many(list(items) + [f"{prefix}-absent"])
        assert {k: r.value for k, r in results.items() if r.found} == items
        assert not results[f"{prefix}-absent"].found
        with pytest.raises(ringkv.BatchError) as failed:
            await c.get_many([f"{prefix}-1", b"k" * (70 * 1024)])
        assert failed.value.results[f"{prefix}-1"].value == b"1"
        assert len(failed.value.errors) == 1
