"""Whether a key re-runs one item set: what an evaluation does and a harvest does not.

An evaluation company sends its benchmark's items to one model, then the same items to the
next model, or again days later. Its first run is, by its traffic, a sweep (items at machine
rate, often asking for the reasoning); the re-run is what tells it apart. A harvest wants new
answers: it sends each item once, and when it asks again it asks the same model at once for
another sample, not the same prompt on another model at temperature 0 hours later.

The key keeps a bottom-k sample of its prompts' fingerprints (the ``sample`` smallest seen,
with the model and hour each was last sent): 8 + 8 uint32 and two scalars. A prompt whose
fingerprint is under the sample's largest is a *probe*: it is a re-run when it is in the
sample and comes on another model or ``min_gap_hours`` later, a miss when it is new. A
re-run of the whole set probes every sampled item again (all re-runs); a sweep's probes
are all new. ``rerun_ew`` is the share of re-runs among recent probes, ``rerun_hits`` their
count. A key that turns to sweeping new items misses on its next few probes and loses the
evidence.

The fingerprint is keyed (BLAKE2b with the deployment's ``key``): with a public hash, an
attacker who reads this file would know which of its items are sampled and re-send only
those; keyed, it must re-send the set, as an evaluation does.

Pure, no I/O.

>>> reruns = ItemReruns()
>>> from types import SimpleNamespace
>>> st = SimpleNamespace(rerun_ids=[0] * 8, rerun_meta=[0] * 8, rerun_ew=0.0, rerun_hits=0.0)
>>> items = [f"Question {i}: what is {i} + {i}? Think step by step." for i in range(60)]
>>> for i, text in enumerate(items):  # the first run, on model a
...     reruns.learn_one(st, item_fingerprint(text), "model-a", 1_000 * i)
>>> reruns.holds(st), st.rerun_hits
(False, 0.0)
>>> for i, text in enumerate(items):  # the same set on model b
...     reruns.learn_one(st, item_fingerprint(text), "model-b", 100_000 + 1_000 * i)
>>> reruns.holds(st), st.rerun_hits, round(st.rerun_ew, 2)
(True, 8.0, 0.83)
"""
from __future__ import annotations

import zlib
from hashlib import blake2b

#: fingerprints a key's sample keeps (with the model and hour each was last sent)
RERUN_SAMPLE = 8

_HOURS = 0xFFFFF  # the hour a sampled item was last sent, 20 bits (wraps every 119 years)


def item_fingerprint(prompt: str, key: bytes = b"") -> int:
    """A nonzero 32-bit keyed fingerprint of a prompt's exact text (0 marks an empty slot).

    >>> item_fingerprint("2 + 2?") == item_fingerprint("2 + 2?") != item_fingerprint("2 + 2?", b"secret")
    True
    """
    digest = blake2b(prompt.encode("utf-8", "surrogatepass"), digest_size=4, key=key).digest()
    return int.from_bytes(digest, "little") or 1


def model_mark(model: str) -> int:
    """The 12-bit mark of a model name kept beside a sampled item (a collision only hides a re-run)."""
    return zlib.crc32(model.encode("utf-8", "surrogatepass")) & 0xFFF


class ItemReruns:
    """Learns from each prompt whether the key re-runs an item set (bottom-k sample).

    Hyperparameters, and why:

    - ``alpha`` 0.2: the share over the last few probes. A re-run probes each of the 8 sampled
      items once (0.83 after them); a key that turns to new items misses within a few probes.
    - ``min_gap_hours`` 6: the same model counts again after a working day's pause (a nightly
      regression run); at once it is a re-sample, what a harvest does for diversity.
    - ``min_share`` 0.5 and ``min_hits`` 4: half a sample's items re-run, recently.
    """

    def __init__(self, alpha: float = 0.2, min_gap_hours: int = 6, min_share: float = 0.5,
                 min_hits: int = 4) -> None:
        self.alpha = alpha
        self.min_gap_hours = min_gap_hours
        self.min_share = min_share
        self.min_hits = min_hits

    def learn_one(self, st, fingerprint: int, model: str, ts_ms: int) -> None:
        """Fold one prompt (its ``item_fingerprint``) into the key's sample ``st.rerun_ids``
        / ``st.rerun_meta`` and its share ``st.rerun_ew`` / count ``st.rerun_hits``."""
        ids, meta = st.rerun_ids, st.rerun_meta
        mark, hour = model_mark(model), (ts_ms // 3_600_000) & _HOURS
        now = (mark << 20) | hour
        try:
            slot = ids.index(fingerprint)
        except ValueError:
            slot = -1
        if slot >= 0:
            last = meta[slot]
            if (last >> 20) == mark and (hour - (last & _HOURS)) & _HOURS < self.min_gap_hours:
                return  # the same prompt to the same model again at once: a re-sample, no probe
            meta[slot] = now
            st.rerun_ew += self.alpha * (1.0 - st.rerun_ew)
            st.rerun_hits = min(65535.0, st.rerun_hits + 1)
            return
        largest = max(ids)
        if 0 in ids:
            slot = ids.index(0)
        elif fingerprint < largest:
            slot = ids.index(largest)
        else:
            return  # above the sample: no probe
        ids[slot], meta[slot] = fingerprint, now
        st.rerun_ew -= self.alpha * st.rerun_ew

    def holds(self, st) -> bool:
        """Whether the key's recent probes are mostly re-runs of its sampled items."""
        return st.rerun_hits >= self.min_hits and st.rerun_ew >= self.min_share
