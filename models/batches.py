"""Whether a key grades in batches: one question asked many times over, then the next.

A grading product (an auto-marker for schools, a reviewer of support answers) sends one frame,
one question and its rubric around each submission of a batch: a class's answers one after
another, then the next assignment's. Its prompts carry every grading word a rubric harvest
carries ("grade", "rubric", "marks out of 10"), at machine rate. What a harvest does not do is
ask one question many times over and then stop asking it.

Measured on the prompt's lines (not its words: a frame, a question, a rubric and a student's
answer are each a line or more, wherever the template puts them), per key, with a table of
the key's lines (``TABLE`` entries, each a 16-bit mark of the line's text, the key's event
count when it was first and last seen, and how often it was seen, packed in a uint64):

- a line *recurs* once seen ``min_count`` times; a frame's lines recur for as long as the
  frame is used, a question's for as long as its batch lasts;
- a recurring line is *retired* once the key has sent ``retire_after`` events without it: a
  batch that ended. Its retirement counts a batch (``batches``, and when: ``batch_last``)
  unless the line began with the batch counted last (``batch_begun``: a question's lines and
  its rubric begin together);
- ``batch_ew`` is the share of the key's recent one-shot requests that repeat a recurring line
  first seen within the last ``window`` events (a sweep's own frame, once older than that, no
  longer counts: a key that turns to sweeping under its frame loses the share).

A sweep of distinct items under one frame retires nothing (its frame recurs for ever, each
item is seen once); wrappers rotated at random recur for ever too. A grader retires a question
every 15-120 requests (stress stream product-negatives-g). A student's answer is seen once and
takes the slot of an older such line first, so the recurring lines keep their slots.

Pure, no I/O.

>>> batches, st = GradedBatches(), _State()
>>> frame = "You grade coursework against the rubric. Score out of 10."
>>> for n in range(90):  # three questions, 30 students each
...     question = f"Question: explain topic number {n // 30} in your own words"
...     batches.learn_one(st, line_marks(f"{frame}\\n{question}\\nStudent answer: attempt {n} of many"), n, True)
>>> batches.batches(st, 90), round(st.batch_ew, 2)  # two questions retired, the third asked
(2, 0.99)
>>> sweep = _State()
>>> for n in range(400):  # distinct items under one frame: nothing retires
...     batches.learn_one(sweep, line_marks(f"{frame}\\nQuestion: item number {n} of the set"), n, True)
...     if n == 200:
...         print(batches.batches(sweep, n + 1), round(sweep.batch_ew, 2))  # its frame recurs, young
0 1.0
>>> batches.batches(sweep, 400), round(sweep.batch_ew, 2)  # and ages out of the window
(0, 0.01)
"""
from __future__ import annotations

import zlib
from itertools import islice

#: recurring lines a key's table keeps (uint64 each)
TABLE = 10
_LINES_READ = 32  # the prompt's first lines read (a template's frame and question come first)
_MARKS = 8  # distinct marks an event contributes
_MIN_LINE_CHARS = 16  # shorter lines ("Score:", "Answer:") are frame punctuation, not content
_U16 = 0xFFFF
_COUNT = 0x7FFF  # an entry's count (saturating); the bit above it marks a retirement counted
_RETIRED = 0x8000


def line_marks(prompt: str) -> tuple[int, ...]:
    """Nonzero 16-bit marks of the prompt's first distinct lines of 16+ characters.

    >>> line_marks("Score:\\nQuestion: what is a prime number?") == line_marks("Question: what is a prime number?")
    True
    """
    marks: list[int] = []
    for line in islice(prompt.splitlines(), _LINES_READ):
        line = line.strip()
        if len(line) >= _MIN_LINE_CHARS:
            mark = (zlib.crc32(line.encode("utf-8", "surrogatepass")) & _U16) or 1
            if mark not in marks:
                marks.append(mark)
                if len(marks) == _MARKS:
                    break
    return tuple(marks)


def _age(n: int, seen: int) -> int:
    """Events since ``seen`` (16-bit event counts, modulo their wrap)."""
    return (n - seen) & _U16


class GradedBatches:
    """Learns a key's batches from each prompt's ``line_marks`` (state: ``st.batch_table``, a
    list of ``TABLE`` uint64, and the scalars ``batch_ew``, ``batches``, ``batch_last``,
    ``batch_begun``).

    Hyperparameters, and why:

    - ``alpha`` 0.05: the share over the last 20-40 events (as the other product evidence).
    - ``min_count`` 8: a line seen 8 times recurs (a class is 15-120 students; a frame line
      of a sweep recurs at once too, and is told apart by never retiring).
    - ``retire_after`` 20: a recurring line not seen for 20 events has been retired (two
      teachers' batches interleaved still show each question every few events).
    - ``window`` 300: the batches count while the last retired within the last 300 events, and
      the share counts lines first seen within them: evidence of the key's recent traffic, so
      a grader that turns to sweeping loses it within that many events (a sweep's frame line
      new at the turn is young that long). Not 200: two teachers grading classes of ~100 at
      once retire nothing for 200 events (product-negatives-g: 4 of 11 graders paged).
    """

    def __init__(self, alpha: float = 0.05, min_count: int = 8, retire_after: int = 20,
                 window: int = 300) -> None:
        self.alpha = alpha
        self.min_count = min_count
        self.retire_after = retire_after
        self.window = window

    def learn_one(self, st, marks: tuple[int, ...], n: int, one_shot: bool) -> None:
        """Fold one prompt's marks into the key's table (``n``: the key's events before it;
        ``one_shot``: not a conversation's later turn, which resends the previous ones)."""
        table, now = st.batch_table, n & _U16
        repeats = False
        slots = {entry >> 48: slot for slot, entry in enumerate(table) if entry}  # (one dict, not a scan a line)
        for mark in marks:
            slot = slots.get(mark)
            if slot is None:
                slot = self._free_slot(table, now)
                if table[slot]:
                    del slots[table[slot] >> 48]
                table[slot], slots[mark] = mark << 48 | now << 32 | now << 16 | 1, slot
                continue
            entry = table[slot]
            count = entry & _COUNT
            if count >= self.min_count - 1 and _age(n, entry >> 32 & _U16) <= self.window:
                repeats = True  # (counted before this prompt: it repeats a young recurring line)
            table[slot] = (entry >> 32) << 32 | now << 16 | (entry & _RETIRED) | min(count + 1, _COUNT)
        for slot, entry in enumerate(table):  # the recurring lines that have just retired
            if entry & _COUNT >= self.min_count and not entry & _RETIRED \
                    and _age(n, entry >> 16 & _U16) >= self.retire_after:
                table[slot] = entry | _RETIRED
                began, last = entry >> 32 & _U16, int(st.batch_begun)
                if not st.batches or min(_age(began, last), _age(last, began)) >= self.min_count:
                    st.batches = min(float(_U16), st.batches + 1)
                    st.batch_begun, st.batch_last = float(began), float(n)
        st.batch_ew += self.alpha * ((repeats and one_shot) - st.batch_ew)

    @staticmethod
    def _free_slot(table: list[int], now: int) -> int:
        """An empty slot, else the line seen once longest ago (a student's answer), else the
        line seen longest ago; not one this prompt has just put in (its question, new)."""
        if 0 in table:
            return table.index(0)
        best, best_rank = 0, -1
        for slot, entry in enumerate(table):
            age = (now - (entry >> 16)) & _U16
            if age:  # (not this prompt's)
                rank = age + (0x10000 if entry & _COUNT == 1 else 0)  # once-seen lines first
                if rank > best_rank:
                    best, best_rank = slot, rank
        return best

    def share(self, st, n: int) -> float:
        """``batch_ew`` without the weight of the zero it started from (``n``: the key's events
        so far, 2 or more): the mean over the events since, as ``alpha`` weighs them."""
        return st.batch_ew / (1.0 - (1.0 - self.alpha) ** (n - 1))

    def batches(self, st, n: int) -> int:
        """The batches counted, while the last of them retired within the last ``window``
        events (``n``: the key's events so far), else 0."""
        return int(st.batches) if st.batches and n - st.batch_last <= self.window else 0


class _State:
    """A key's batch state alone (doctests)."""

    def __init__(self) -> None:
        self.batch_table = [0] * TABLE
        self.batch_ew = self.batches = self.batch_last = self.batch_begun = 0.0
