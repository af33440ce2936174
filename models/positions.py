"""A record's position in an input partition across epochs (logs replaced under the same offsets).

An offset identifies a record only within one log; a partition whose log is replaced (a broker
back empty, a topic recreated) starts a new epoch (see ``streams/epochs.py``, which detects it).
A position packs the epoch above the offset, so positions of a later epoch sort after every
offset of an earlier one: the key state, the sink's watermarks and the cluster sources compare
positions as they compared offsets.

>>> position(1, 10) > position(0, 10**9)
True
>>> epoch_of(position(3, 42)), offset_of(position(3, 42))
(3, 42)
"""
from __future__ import annotations

from dataclasses import dataclass

# Offsets below 2**40 (10^12 records a partition and epoch); positions stay exact in the
# key state's float64 up to epoch 2**13.
EPOCH_SHIFT = 40
MAX_OFFSET = (1 << EPOCH_SHIFT) - 1


def position(epoch: int, offset: int) -> int:
    """A record's place across epochs: later epochs sort after every offset of earlier ones."""
    if not 0 <= offset <= MAX_OFFSET:
        raise ValueError(f"offset {offset} outside 0..{MAX_OFFSET}")
    return (epoch << EPOCH_SHIFT) | offset


def epoch_of(pos: int) -> int:
    return pos >> EPOCH_SHIFT if pos >= 0 else 0


def offset_of(pos: int) -> int:
    return pos & MAX_OFFSET if pos >= 0 else pos


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """What the sink holds at one position: a feature row (with its event id) or a dead letter."""

    kind: str  # "row" or "dead"
    event_id: str | None = None
