"""``distillguard replay --jobs N``: the per-key step in N processes, the cross-key detectors in
this one, with the output of one process.

It is the workers' own shape: per-key agents, each owning the keys of its partitions, and one
cluster agent that hears every link record. Each record goes to the process that owns its key
(``events.routing_key``; a key is owned by the process with the fewest records so far when its
first record comes, see :class:`KeyOwners`), which steps its records in input order with the
workers' ``RequestProcessor`` on its own key states and returns, per record, what it made: a
dead letter, a feature row, a key alert, a link record (in its wire form, as a worker sends it),
the population samples its key gave. This process puts all of it back in input order, learns
the samples (an alert's baselines are the median over *all* keys, as in one process: a worker
states its own partitions'), hands the link records to the cluster and cohort detectors, and
returns one :class:`~distillguard.models.step.BatchResult` per batch, as ``RequestProcessor.run``
would have. Alerts, dead letters, rows and exculpated detections are the same, in the same
order (``tests/unit/test_replay_shards.py``).

The processes are forked (they inherit the detector and its config, nothing is pickled but
records and outputs) and read and written through queues whose feeder threads never block
the sender. At most ``IN_FLIGHT`` batches are in flight: memory stays bounded on any input,
and a process whose share of one batch was small goes on with the next while the other
finishes (a batch's shares differ by 16-31 % on the streams of ``benchmarks/``).
"""
from __future__ import annotations

import multiprocessing
import queue
import time
import traceback
from collections import deque
from dataclasses import dataclass, fields

from distillguard.contracts.link_record import link_batch_bytes, link_records_in
from distillguard.errors import DistillguardError
from distillguard.models.clusters import ClusterDetector
from distillguard.models.events import routing_key
from distillguard.models.pipeline import KeyPipeline, rebaseline
from distillguard.models.population import PopulationSamples
from distillguard.models.step import BatchResult, Counters, Record, RequestProcessor

IN_FLIGHT = 8  # batches handed out and not yet merged back (2 left the processes waiting on each other)
POLL_S = 1.0  # how often a wait for a process's results checks that it is still alive


class ReplayWorkerError(DistillguardError):
    """A replay process failed (its traceback in the message) or died."""


class KeyOwners:
    """Which process owns each key: the one with the fewest records so far when the key's first
    record comes (the lowest number among equals), then for good. Bad records, which have no
    key, go to the first.

    Replay knows no partitions, so it can balance the work as a hash cannot: crc32 mod 2 gave
    one process 54-59 % of the records on 4 of 7 benchmark streams (a few busy keys), and the
    replay waits for the busier. The choice depends on the input's order alone, and the
    output does not depend on it (each key's records are stepped in order by one process).
    Holds one small int per key, as each process holds the key's state.

    >>> owners = KeyOwners(2)
    >>> [owners.of(key) for key in ["busy", "busy", "busy", "quiet", "new", None]]
    [0, 0, 0, 1, 1, 0]
    """

    def __init__(self, jobs: int) -> None:
        self.records = [0] * jobs  # records handed to each process
        self._owner: dict[str, int] = {}

    def of(self, api_key_id: str | None) -> int:
        owner = 0 if api_key_id is None else self._owner.get(api_key_id)
        if owner is None:
            owner = self._owner[api_key_id] = self.records.index(min(self.records))
        self.records[owner] += 1
        return owner

    def owns(self, shard: int, api_key_id: str) -> bool:
        return self._owner.get(api_key_id) == shard


@dataclass(slots=True)
class _Part:
    """What one process made of its share of a batch. ``marks[j]``: the running counts of
    (dead letters, rows, alerts, link records, population samples) once its j-th record was
    stepped, so that record j made the items between ``marks[j - 1]`` and ``marks[j]``."""

    marks: list[tuple[int, int, int, int, int]]
    dead_letters: list
    rows: list
    alerts: list
    links: bytes  # link_batch_bytes of the link records
    samples: list
    new_keys: list[str]  # keys whose state this process began in this batch (checked against KeyOwners)


def _work(shard: int, pipeline: KeyPipeline, processor: dict, keep_rows: bool, inbox, outbox) -> None:
    """One process's loop: its share of each batch in, a :class:`_Part` out; at the end its
    counters and key count."""
    try:
        samples = pipeline.population = PopulationSamples(pipeline.population.signals)
        step = RequestProcessor(pipeline, **processor)
        states: dict[str, bytes] = {}
        while (records := inbox.get()) is not None:
            out, marks = BatchResult(), []
            for _ in step.steps([Record(*r) for r in records], states, out):
                marks.append((len(out.dead_letters), len(out.rows), len(out.alerts), len(out.links),
                              len(samples.taken)))
            new_keys = [key for key in out.states if key not in states]
            states.update(out.states)
            outbox.put(_Part(marks, out.dead_letters, out.rows if keep_rows else [], out.alerts,
                             link_batch_bytes([link.to_bytes() for link in out.links]), samples.taken,
                             new_keys))
            samples.taken = []
        outbox.put(("done", step.counters, len(states), sum(map(len, states.values()))))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        outbox.put(("error", f"replay process {shard}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


class ShardedStep:
    """``RequestProcessor.run`` over ``jobs`` processes; :meth:`submit` a batch, get back the
    batches that are done (in order), :meth:`finish` for the rest."""

    def __init__(self, jobs: int, pipeline: KeyPipeline, *, source_topic: str,
                 allowed_lateness_ms: int | None = None, clusters: ClusterDetector | None = None,
                 keep_rows: bool = False) -> None:
        if jobs < 2:
            raise ValueError("ShardedStep needs 2 or more processes (1: RequestProcessor itself)")
        self.jobs = jobs
        self.clusters = clusters
        self.population = pipeline.population  # learned here, from every process's samples
        self.counters = Counters()
        self.cluster_seconds = 0.0
        self.keys = 0
        self.state_bytes = 0
        self.submitted = 0  # records handed out (the progress bar's count)
        self._pending: deque[list[int]] = deque()  # each batch in flight: the process of each record
        self._owners = KeyOwners(jobs)
        context = multiprocessing.get_context("fork")  # (inherits the detector: nothing to pickle)
        self._inboxes = [context.Queue() for _ in range(jobs)]
        self._outboxes = [context.Queue() for _ in range(jobs)]
        processor = {"source_topic": source_topic, "allowed_lateness_ms": allowed_lateness_ms}
        self._processes = [context.Process(target=_work, name=f"distillguard-replay-{shard}", daemon=True,
                                           args=(shard, pipeline, processor, keep_rows,
                                                 self._inboxes[shard], self._outboxes[shard]))
                           for shard in range(jobs)]
        for process in self._processes:
            process.start()

    def submit(self, records: list[Record]) -> list[BatchResult]:
        owner_of = self._owners.of
        owners = [owner_of(routing_key(r.value) if r.value is not None else None) for r in records]
        shares: list[list[tuple]] = [[] for _ in range(self.jobs)]
        for record, owner in zip(records, owners):
            shares[owner].append((record.value, record.key, record.partition, record.offset, record.position))
        for inbox, share in zip(self._inboxes, shares):
            inbox.put(share)
        self._pending.append(owners)
        self.submitted += len(records)
        done = []
        while len(self._pending) > IN_FLIGHT - 1:
            done.append(self._merge(self._pending.popleft()))
        return done

    def finish(self) -> list[BatchResult]:
        """The batches still in flight; then the processes end (their counters are summed in)."""
        done = [self._merge(self._pending.popleft()) for _ in range(len(self._pending))]
        for inbox in self._inboxes:
            inbox.put(None)
        for shard in range(self.jobs):
            _, counters, keys, state_bytes = self._receive(shard, "done")
            self._add(counters)
            self.keys += keys
            self.state_bytes += state_bytes
        for process in self._processes:
            process.join()
        return done

    def close(self) -> None:
        """Stop the processes (after an error: :meth:`finish` ends them in the normal case)."""
        for process in self._processes:
            if process.is_alive():
                process.kill()
            process.join()
        for box in self._inboxes + self._outboxes:
            # Records handed to a process that is gone stay in its pipe: without this, the
            # queue's feeder thread would wait for a reader at interpreter exit, forever.
            box.cancel_join_thread()
            box.close()

    def _receive(self, shard: int, kind: str = "part"):
        process = self._processes[shard]
        while True:
            try:
                message = self._outboxes[shard].get(timeout=POLL_S)
            except queue.Empty:
                if not process.is_alive():
                    raise ReplayWorkerError(f"replay process {shard} died (exit code {process.exitcode})") from None
                continue
            if isinstance(message, tuple) and message[0] == "error":
                raise ReplayWorkerError(message[1])
            if (kind == "done") != isinstance(message, tuple):
                raise ReplayWorkerError(f"replay process {shard}: expected {kind}, got {type(message).__name__}")
            return message

    def _merge(self, owners: list[int]) -> BatchResult:
        """One batch's parts, back in input order: per record its dead letter, row, key alert
        (with the population's baselines as learned up to it), then its link record and the
        cluster alerts it raised, as ``RequestProcessor._step_one`` orders them."""
        parts = [self._receive(shard) for shard in range(self.jobs)]
        for shard, part in enumerate(parts):
            strays = [key for key in part.new_keys if not self._owners.owns(shard, key)]
            if strays:  # (routing_key disagreed with parse_event: a bug, never a silent split of a key's state)
                raise ReplayWorkerError(f"records of keys {strays[:3]} reached process {shard}, which does not own them")
        # (an empty batch is no message link_records_in reads: it takes "[]" for one record)
        links = [link_records_in(part.links) if part.links != b"[]" else [] for part in parts]
        at = [0] * self.jobs  # each part's next record
        before = [(0, 0, 0, 0, 0)] * self.jobs
        out = BatchResult()
        learn, clusters = self.population.learn_one, self.clusters
        for owner in owners:
            part = parts[owner]
            mark = part.marks[at[owner]]
            dead, rows, alerts, linked, sampled = before[owner]
            at[owner] += 1
            before[owner] = mark
            if mark[0] > dead:
                out.dead_letters.extend(part.dead_letters[dead:mark[0]])
            if mark[1] > rows:
                out.rows.extend(part.rows[rows:mark[1]])
            for levels in part.samples[sampled:mark[4]]:
                learn(levels)
            for alert in part.alerts[alerts:mark[2]]:
                out.alerts.append(rebaseline(alert, self.population))
            for link in links[owner][linked:mark[3]]:
                out.links.append(link)
                if clusters is not None:
                    began = time.perf_counter()
                    out.alerts.extend(clusters.observe_link(link))
                    self.cluster_seconds += time.perf_counter() - began
        return out

    def _add(self, counters: Counters) -> None:
        for f in fields(Counters):
            mine, theirs = getattr(self.counters, f.name), getattr(counters, f.name)
            if isinstance(mine, dict):
                for name, count in theirs.items():
                    mine[name] = mine.get(name, 0) + count
            else:
                setattr(self.counters, f.name, mine + theirs)
