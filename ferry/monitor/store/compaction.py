"""Which small sample chunks to merge: tiered, as log-structured stores do.

A chunk's tier is how many times `COMPACT_FANIN` fits in its row count (1-15 rows: tier 0,
16-255: tier 1, ...). When one tier holds `COMPACT_FANIN` chunks they become one chunk of the
next tier, so a row is rewritten once per tier, four times at most below
`samples.CHUNK_ROWS` (2**16), and a quiet model that flushes one row a second still reads
back in a few dozen chunks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

COMPACT_FANIN_BITS = 4
COMPACT_FANIN = 1 << COMPACT_FANIN_BITS
"""Chunks of one tier merged at once."""


def tier(rows: int) -> int:
    return (max(rows, 1).bit_length() - 1) // COMPACT_FANIN_BITS


def mergeable(chunks: Sequence[tuple[int, int]]) -> list[int]:
    """The ids of the lowest tier's chunks when it holds `COMPACT_FANIN` or more, else none.
    `chunks` are (id, rows) of the chunks not yet full."""
    tiers: dict[int, list[int]] = defaultdict(list)
    for chunk_id, rows in chunks:
        tiers[tier(rows)].append(chunk_id)
    full = [ids for _, ids in sorted(tiers.items()) if len(ids) >= COMPACT_FANIN]
    return full[0] if full else []
