"""Every place the worker reaches into Faust's (or its aiokafka driver's) internals.

Faust 0.15 leaves no public way to do these; each function says why the worker needs it.
``tests/unit/streams/test_faust_compat.py`` checks each internal still exists and behaves as
relied on here, so that upgrading Faust fails a unit test instead of a worker in production.
"""
from __future__ import annotations

import asyncio
import gc
import logging
from typing import Awaitable, Callable, Iterable

from distillguard.errors import DistillguardError

log = logging.getLogger(__name__)


def use_fetch_max_wait(ms: int) -> None:
    """Make Faust's consumers wait at most ``ms`` for records at the broker (Faust hard-codes
    1,500 ms in its aiokafka driver and offers no setting). One value per process: a worker
    or a router process builds one app."""
    from faust.transport.drivers import aiokafka as faust_aiokafka

    thread = faust_aiokafka.AIOKafkaConsumerThread
    create = getattr(thread, "_dg_create_worker_consumer", thread._create_worker_consumer)  # noqa: SLF001

    def _create_worker_consumer(self, transport):
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = ms  # noqa: SLF001 - read by the fetcher it starts
        return consumer

    thread._dg_create_worker_consumer = create
    thread._create_worker_consumer = _create_worker_consumer


def known_commit(consumer, tp) -> int | None:
    """The group's commit on ``tp`` as Faust last learned it, as Faust keeps it (None: not
    known). Faust records it at each seek and commit but exposes it only for its own use."""
    return consumer._committed_offset.get(tp)  # noqa: SLF001


def faust_commit(consumer, tp) -> int | None:
    """:func:`known_commit`, never below 0 (None: not known to Faust)."""
    committed = known_commit(consumer, tp)
    return None if committed is None else max(committed, 0)


def paused_partitions(consumer) -> set:
    """Partitions Faust has paused (recovery, back-pressure): shown on /health."""
    return set(consumer._paused_partitions)  # noqa: SLF001


def acked_offsets(consumer) -> list[tuple[object, list[int]]]:
    """Faust's lists of acked offsets per partition, each offset kept once.

    An offset acked twice (a record acked before a rebalance and again when Faust
    re-delivers it) breaks Faust's run of consecutive offsets, and each commit then moves
    one offset on: duplicates are removed in place."""
    lists = []
    for tp, acked in list(consumer._acked.items()):  # noqa: SLF001
        if len(acked) != len(set(acked)):
            acked[:] = sorted(set(acked))
        lists.append((tp, acked))
    return lists


def add_commit_gap(consumer, tp, gap: tuple[int, int]) -> None:
    """Tell Faust's commit that offsets ``gap[0] .. gap[1] - 1`` need no ack (Faust's own gap
    list, meant for compacted or transactional logs): used for records processed and stored
    whose acks Faust dropped in a rebalance (see holes.processed_head_gap)."""
    consumer._gap[tp].addi(*gap)  # noqa: SLF001


async def seek_in_consumer_thread(consumer, tp, offset: int) -> None:
    """Seek ``tp`` to ``offset`` in the consumer's own thread, as Faust's seek is: aiokafka's
    fetcher is not thread-safe (Faust's ``Consumer.seek``, from the app's loop, crashed it with
    a KeyError). Faust's read offset is cleared, else it drops the records it re-reads."""
    thread = consumer._thread  # noqa: SLF001 - the aiokafka consumer thread
    await thread.call_thread(thread.seek, tp, offset)
    consumer._read_offset[tp] = None  # noqa: SLF001


def set_agent_error_hook(agent, hook: Callable[[object, BaseException], Awaitable[None]]) -> None:
    """Faust's per-agent error hook (``app.agent`` sets the app's, which only logs)."""
    agent._on_error = hook  # noqa: SLF001


async def app_agent_error(app, agent, exc: BaseException) -> None:
    """What Faust does itself when an agent crashes (after the worker's hook has noted it)."""
    await app._on_agent_error(agent, exc)  # noqa: SLF001


def rewind_uncommitted_after_seeks(app, source_topics: set[str],
                                   also_rewind: Callable[[Iterable], list]) -> None:
    """After Faust's first seek to the committed offsets in each consumer generation,
    rewind the assigned source partitions that have no commit to their first record.

    When a rebalance suspends Faust's flow, the records it had fetched are dropped, yet
    the fetch position stays past them; the seek to the committed offset that follows
    brings them back, but aiokafka seeks only partitions with a commit above 0. A
    partition nothing was committed on stayed past its dropped records: in the SIGKILL
    fault test the restarted worker never saw 94 of one partition's 95 records. Rewound,
    such a partition is read again from its start (records already applied are
    recognised by the key's state, rows by the sink's watermark).

    A commit Faust remembers but the broker no longer has (it came back empty, the topic
    was recreated) counts as none: forgotten, so that commits of the new log are not held
    back by it, and the partition is read from its new start (a new epoch: streams/epochs.py).
    ``also_rewind(source partitions)`` names more to read from their start (logs found replaced).
    """
    consumer = app.consumer
    if getattr(consumer, "_dg_rewinds_uncommitted", False):
        return
    rewound = {"generation": None}
    seek_to_committed = consumer.perform_seek
    broker_commits: dict = {}  # what the broker answered at the seek being made (None: no answer)
    ask_broker = consumer.seek_to_committed

    async def seek_to_broker_commits():
        offsets = await ask_broker()
        broker_commits["answer"] = dict(offsets)
        return offsets

    async def perform_seek() -> None:
        generation = app.consumer_generation_id
        broker_commits["answer"] = None
        await seek_to_committed()
        committed = consumer._committed_offset  # noqa: SLF001 - set by the seek just made
        source = [tp for tp in consumer.assignment() if tp.topic in source_topics]
        gone = _forget_lost_commits(committed, source, broker_commits["answer"])
        if rewound["generation"] == generation:
            # Once per generation: Faust also seeks from its fetch loop while the flow is
            # stopped (recovery); rewinding on every pass there would re-read those
            # partitions again and again.
            partitions = gone
        else:
            rewound["generation"] = generation
            partitions = [tp for tp in source if committed.get(tp) is None]
        partitions += [tp for tp in also_rewind(source) if tp not in partitions]
        try:
            for tp in partitions:
                # below the log start, the reset policy applies: earliest
                await seek_in_consumer_thread(consumer, tp, 0)
        except Exception:  # noqa: BLE001 - rebalancing again: the next seek rewinds
            log.warning("could not rewind %d uncommitted partitions", len(partitions), exc_info=True)

    consumer.perform_seek = perform_seek
    consumer.seek_to_committed = seek_to_broker_commits
    consumer._dg_rewinds_uncommitted = True


def _forget_lost_commits(committed: dict, source: list, answer: dict | None) -> list:
    """Drop from Faust's record the commits the broker no longer has; returns their partitions.
    Checked on every seek: a broker back empty starts its generations again, so the
    generation can be the one already seen."""
    gone = [tp for tp in source if committed.get(tp) is not None and answer is not None and not answer.get(tp)]
    for tp in gone:
        committed.pop(tp, None)
    if gone:
        log.warning("the broker has lost the commits of %s (back empty? topic recreated?): reading them "
                    "from their start", ", ".join(f"{tp.topic}:{tp.partition}" for tp in gone))
    return gone


def per_batch_monitor():
    """Faust's Monitor sensor without its per-message bookkeeping.

    Faust always adds its Monitor to the app's sensors and calls it for every message and
    event (in, out, table get/set: timestamps, deques, dicts) although nothing here reads
    those figures; the worker's own metrics are counted per batch. Commit, send and
    rebalance hooks (per batch, cheap) are kept."""
    from faust.sensors.monitor import Monitor

    class PerBatchMonitor(Monitor):
        def on_message_in(self, tp, offset, message) -> None:
            return None

        def on_stream_event_in(self, tp, offset, stream, event):
            return None

        def on_stream_event_out(self, tp, offset, stream, event, state=None) -> None:
            return None

        def on_message_out(self, tp, offset, message) -> None:
            return None

        def on_table_get(self, table, key) -> None:
            return None

        def on_table_set(self, table, key, value) -> None:
            return None

        def on_table_del(self, table, key) -> None:
            return None

    return PerBatchMonitor()


class RebalanceBlocked(DistillguardError):
    """Revoked partitions' records could not be stored and acked in time (ClickHouse down?)."""


def flush_while_waiting_empty(app, flush: Callable[[], Awaitable[object]], interval_s: float, *,
                              stop_timeout_s: float, revoke_timeout_s: float) -> None:
    """Run ``flush`` every ``interval_s`` while Faust waits for the records its agents took to
    be acked (``App._consumer_wait_empty``: when the app stops, and when partitions are revoked).

    This worker acks a record only once its checkpoint's flush has stored what it produced,
    and a timer runs that flush. When the app stops, Faust ends its timers first (their loop
    ends once the app is stopping) and then waits for those acks: the last flush interval's
    records were never acked, and a worker asked to stop with SIGTERM waited until it was
    killed (Faust logged ``wait_empty: Waiting for tasks`` for a links-topic record; 10 s in
    every integration test that stopped a worker, until its SIGKILL). Flushing beside the wait
    stores, changelogs, acks and lets Faust commit before the worker leaves its group. During a
    revocation the timers still run; the extra flushes only end the wait sooner. ``flush``
    must not raise (a failure is kept for its next call, as the timer's is).

    During a ClickHouse outage no flush can store, so no ack comes, and Faust's wait has no
    end. Stopping, the wait ends after ``stop_timeout_s`` (else it lasts until the
    orchestrator's SIGKILL). Revoking, after ``revoke_timeout_s`` the wait raises
    ``RebalanceBlocked``, which crashes the app: the worker exits non-zero to be restarted
    (else the whole group waits for this member, and no worker detects anything until
    ClickHouse is back). Either way only what was acked is committed, so the partitions' next
    owner reads the rest again, as after a crash (at least once); the consumer's own stop does
    not wait again (its loop ends once it is stopping)."""
    wait = app._consumer_wait_empty  # noqa: SLF001 - no hook between Faust's fetcher stop and this wait
    gave_up = False

    async def flush_every_interval() -> None:
        while True:
            await flush()
            await asyncio.sleep(interval_s)

    async def all_acked_within(consumer, timeout_s: float) -> bool:
        # Consumer.wait_empty's loop with a deadline. Its own has none, and cancelling it does
        # not end it: its wait for an ack (Consumer._wait_for_ack) swallows CancelledError.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while consumer._unacked_messages and loop.time() < deadline:  # noqa: SLF001 - as wait_empty
            gc.collect()  # the unacked records are a WeakSet: those no longer referenced leave it
            await consumer.commit()
            if not consumer._unacked_messages:  # noqa: SLF001
                break
            await consumer._wait_for_ack(timeout=1)  # noqa: SLF001 - woken by an ack, else 1 s
            consumer._clean_unacked_messages()  # noqa: SLF001
        await consumer.commit_and_end_transactions()  # what was acked, as wait_empty ends
        return not consumer._unacked_messages  # noqa: SLF001

    async def bounded_wait(consumer) -> None:
        nonlocal gave_up
        stopping = app.should_stop
        timeout_s = 0.0 if gave_up else stop_timeout_s if stopping else revoke_timeout_s
        if await all_acked_within(consumer, timeout_s):
            return
        unacked = len(consumer._unacked_messages)  # noqa: SLF001
        if stopping:
            if not gave_up:
                log.error("stopping with %d records not stored after %g s (DG_STOP_TIMEOUT_S; is ClickHouse "
                          "down?): their offsets are not committed, the partitions' next owner reads them "
                          "again", unacked, timeout_s)
            return
        gave_up = True
        log.error("a rebalance waited %g s (DG_REVOKE_TIMEOUT_S) for %d records not stored (is ClickHouse "
                  "down?): the worker exits to be restarted so the group can go on; their offsets are not "
                  "committed, the partitions' next owner reads them again", timeout_s, unacked)
        raise RebalanceBlocked(f"{unacked} records not stored within {timeout_s:g} s of a revocation")

    async def _consumer_wait_empty(consumer, logger) -> None:
        if not app.conf.stream_wait_empty:
            await wait(consumer, logger)
            return
        flusher = asyncio.ensure_future(flush_every_interval())
        try:
            await bounded_wait(consumer)
        finally:
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)

    app._consumer_wait_empty = _consumer_wait_empty  # noqa: SLF001


def allow_rebalance_return_after_end(app) -> None:
    """Let the end of a rebalance come before its "return" without Faust's warning.

    Faust calls ``App.on_rebalance_return`` after its chain of assignment callbacks, and the
    table recovery that chain starts calls ``on_rebalance_end`` when it finishes, which clears
    the rebalance's sensor state. A recovery with nothing to read finishes first, so every
    worker logged ``WARNING Missing sensor state for rebalance #1`` at start (Faust issue #83,
    open since 2021), a warning on-call was told to ignore. Such a late return now does
    nothing (the rebalance was over, its sensors told); a return while a rebalance is under
    way without its state still warns, as Faust does."""
    on_return = app.on_rebalance_return

    def on_rebalance_return() -> None:
        if not app.rebalancing and app._rebalancing_sensor_state is None:  # noqa: SLF001 - cleared by on_rebalance_end
            log.debug("rebalance #%s ended before its assignment returned", app.rebalancing_count)
            return
        on_return()

    app.on_rebalance_return = on_rebalance_return


def faust_worker(app, loglevel: str):
    """A ``faust.Worker`` for ``app`` that logs at ``loglevel`` without Faust's terminal spinner.

    Faust's Worker always builds a progress spinner and, at WARN or above, puts the root
    logger at DEBUG with a handler that turns the spinner on every record: every
    ``logger.debug`` in Faust, mode and aiokafka (one per message produced, several per fetch)
    then built a LogRecord that no handler printed (1-2 % of a busy worker's main thread under
    py-spy), and the spinner wrote its escape codes into the worker's log. Without the
    spinner the root logger stays at ``loglevel``."""
    import faust

    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.spinner = None
    return worker
