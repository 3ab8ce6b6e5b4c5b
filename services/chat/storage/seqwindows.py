"""Reading a conversation's messages by seq in windows bounded on both sides.

Why: the embedded MongoDB-wire server does not stop an index range scan at `limit`: it reads
the whole range, then sorts and cuts. Asking for the newest 51 of a 10,000-message conversation
as `seq > 0, sort desc, limit 51` took 340 ms (and grew with the conversation); the same page
asked as the window `9949 < seq < 10001` took 3.6 ms, at any size. Seqs are dense (gap-free
when stored; only expired messages, deleted by the TTL index, leave holes), so a window of
`limit` seqs holds at most `limit` messages; a window that comes back sparse widens the next
one, so long runs of deleted messages cost few reads. A real mongod answers the same windows
from the same index at least as fast.

`top` is the highest seq the caller knows (the conversation's `last_seq`); the window that
reaches it is left open above, so messages stored above a `last_seq` not yet raised (a replica
died between its two writes) are still read.
"""
from collections.abc import AsyncIterator

from pymongo import ASCENDING, DESCENDING

from shared.stores import Collection, Document

MIN_WIDTH = 32
MAX_WIDTH = 8192


async def windows(
    messages: Collection,
    conversation_id: str,
    low: int,
    high: int | None,
    top: int,
    width: int,
    newest_first: bool,
    projection: dict[str, int] | None = None,
) -> AsyncIterator[list[Document]]:
    """The messages with low < seq < high (high None: no bound but `top`), a window at a time,
    each window's documents in the walking order."""
    width = max(width, MIN_WIDTH)
    # A bound beyond `top` (a client's before_seq of 2^53, say) is no reason to walk down to it
    # window by window: the window that reaches `top` reads everything above it, up to the bound.
    beyond_top = high is None or high > top + 1
    if newest_first:
        upper = top + 1 if beyond_top or high is None else high  # exclusive
        open_top = beyond_top
        while open_top or upper - 1 > low:
            lower = max(low, upper - 1 - width)  # exclusive
            seq: dict[str, int] = {"$gt": lower, "$lt": upper}
            if open_top:
                seq = {"$gt": lower} if high is None else {"$gt": lower, "$lt": high}
            docs = await _read(messages, conversation_id, seq, DESCENDING, projection)
            yield docs
            width = _next_width(width, len(docs))
            upper, open_top = lower + 1, False
    else:
        lower = low  # exclusive
        below = None if beyond_top or high is None else high  # a bound within reach: stop there
        first = below is None  # the open window above `top` is read at least once
        while first or lower < (top if below is None else below - 1):
            first = False
            upper = lower + width  # inclusive
            if below is not None:
                seq = {"$gt": lower, "$lt": min(below, upper + 1)}
            elif upper >= top:
                seq = {"$gt": lower} if high is None else {"$gt": lower, "$lt": high}  # the last window: open above
            else:
                seq = {"$gt": lower, "$lte": upper}
            docs = await _read(messages, conversation_id, seq, ASCENDING, projection)
            yield docs
            width = _next_width(width, len(docs))
            lower = upper


def _next_width(width: int, found: int) -> int:
    """Twice as wide after a sparse window (holes left by expired messages)."""
    return min(width * 2, MAX_WIDTH) if found < width // 2 else width


async def _read(
    messages: Collection, conversation_id: str, seq: dict[str, int], order: int, projection: dict[str, int] | None
) -> list[Document]:
    cursor = messages.find({"conversation_id": conversation_id, "seq": seq}, projection)
    return await cursor.sort("seq", order).to_list()
