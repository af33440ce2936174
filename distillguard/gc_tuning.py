"""The garbage collector's settings for the long-running commands (``worker``, ``replay``).

The detector allocates a few hundred small containers per event and keeps few cycles, so
Python's default thresholds (700, 10, 10) ran a young collection every few events and a full
one (every tracked object: key states, cluster tables, Faust's) about every 70k allocations:
1.16 s of a 24 s replay of dev-s1 (4.8 %), 10 full collections among them, each a pause that
grows with the tables. With :data:`THRESHOLDS` the same replay spent 0.10 s in the collector
(``benchmarks/results/gc.md``). Objects made before the work starts (modules, the compiled
rules, the detector's tables of constants) are frozen out of every collection; forked replay
processes then also leave those pages shared.

Cyclic garbage is still collected: a young collection every 50k net allocations (a few MB at
most), the older generations as often relative to it as Python's defaults make them.
"""
from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Freeze what exists now and set :data:`THRESHOLDS` (call once, when set up)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
