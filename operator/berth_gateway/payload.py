"""Buffered bodies sent upstream in slices of themselves: the socket's buffers never hold a
second copy of a large body."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

#: a buffered body goes upstream in slices of this size
SEND_SLICE_BYTES = 1 << 18


async def slices(buffers: Iterable[bytes | bytearray | memoryview]) -> AsyncIterator[memoryview]:
    """Each buffer in turn, in views of at most SEND_SLICE_BYTES."""
    for buffer in buffers:
        view = memoryview(buffer)
        for start in range(0, len(view), SEND_SLICE_BYTES):
            yield view[start : start + SEND_SLICE_BYTES]
