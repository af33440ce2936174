"""Each reach into Faust's internals (streams/faust_compat.py) still finds what it relies on.

These fail when a Faust upgrade renames or changes one of them, instead of a worker that
quietly stops committing, rewinding or reporting crashed agents."""
from __future__ import annotations

import asyncio
import inspect
import logging
from collections import defaultdict
from types import SimpleNamespace

import faust
import pytest
from faust.agents.agent import Agent
from faust.app.base import App
from faust.sensors.base import Sensor
from faust.sensors.monitor import Monitor
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer, ThreadDelegateConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP
from intervaltree import IntervalTree

from distillguard.streams import faust_compat


def _faust_consumer_state(committed: int | None) -> SimpleNamespace:
    """The attributes Faust's Consumer sets in its __init__ for its commit bookkeeping."""
    state = SimpleNamespace(_acked=defaultdict(list), _acked_index=defaultdict(set), _gap=defaultdict(IntervalTree),
                            _committed_offset=defaultdict(lambda: None))
    state._committed_offset[TP("t", 0)] = committed
    return state


def test_faust_keeps_its_commit_bookkeeping_where_the_worker_reads_it():
    init = inspect.getsource(Consumer.__init__)
    for attribute in ("_gap", "_acked", "_read_offset", "_committed_offset"):
        assert f"self.{attribute} = " in init, attribute
    assert "self._paused_partitions = set()" in inspect.getsource(Consumer._reset_state)
    assert "self._committed_offset.update(" in inspect.getsource(Consumer.perform_seek)
    tp = TP("t", 0)
    consumer = _faust_consumer_state(10)
    assert faust_compat.known_commit(consumer, tp) == 10 and faust_compat.faust_commit(consumer, tp) == 10
    consumer._committed_offset[tp] = -1
    assert faust_compat.known_commit(consumer, tp) == -1 and faust_compat.faust_commit(consumer, tp) == 0
    assert faust_compat.faust_commit(consumer, TP("t", 1)) is None


def test_a_gap_added_for_lost_acks_lets_faust_commit_past_them():
    tp = TP("t", 0)
    consumer = _faust_consumer_state(10)
    consumer._acked[tp] = [15, 16]  # acks of 10..14 lost in a rebalance
    assert Consumer._new_offset(consumer, tp) is None  # Faust waits for them for ever
    faust_compat.add_commit_gap(consumer, tp, (10, 15))
    assert Consumer._new_offset(consumer, tp) == 17


def test_offsets_acked_twice_are_kept_once_so_commits_move_on():
    tp = TP("t", 0)
    consumer = _faust_consumer_state(4)
    consumer._acked[tp] = [5, 5, 6, 7]
    assert [(got, list(acked)) for got, acked in faust_compat.acked_offsets(consumer)] == [(tp, [5, 6, 7])]
    assert Consumer._new_offset(consumer, tp) == 8


def test_seeks_run_in_the_consumer_thread_and_faust_reads_its_read_offset():
    assert "self._thread = " in inspect.getsource(ThreadDelegateConsumer.__init__)
    assert callable(AIOKafkaConsumerThread.seek) and not inspect.iscoroutinefunction(AIOKafkaConsumerThread.seek)
    assert inspect.iscoroutinefunction(AIOKafkaConsumerThread.call_thread)
    assert "_read_offset" in inspect.getsource(Consumer._drain_messages)


def test_faust_seeks_through_the_consumer_instance_so_the_rewind_wrapper_runs():
    # The rewind replaces the instance's perform_seek and seek_to_committed; Faust must call
    # them through the instance (table recovery does), and perform_seek must ask seek_to_committed.
    assert "consumer.perform_seek()" in inspect.getsource(Recovery)
    assert "await self.seek_to_committed()" in inspect.getsource(Consumer.perform_seek)


def test_the_fetch_wait_is_set_where_faust_creates_its_aiokafka_consumer():
    # Faust's own method (an app built earlier in this process has wrapped it)
    faust_create = getattr(AIOKafkaConsumerThread, "_dg_create_worker_consumer",
                           AIOKafkaConsumerThread._create_worker_consumer)
    source = inspect.getsource(faust_create)
    assert "fetch_max_wait_ms=1500" in source  # hard-coded still: else drop the workaround for a setting
    import aiokafka

    assert "self._fetch_max_wait_ms" in inspect.getsource(aiokafka.AIOKafkaConsumer)


def test_faust_calls_the_per_agent_error_hook_and_the_app_handler_exists():
    assert "await self._on_error(self, exc)" in inspect.getsource(Agent._execute_actor)
    assert inspect.iscoroutinefunction(App._on_agent_error)


@pytest.mark.parametrize("hook", ["on_message_in", "on_stream_event_in", "on_stream_event_out", "on_message_out",
                                  "on_table_get", "on_table_set", "on_table_del"])
def test_the_per_batch_monitor_overrides_faust_per_message_hooks(hook):
    monitor = faust_compat.per_batch_monitor()
    assert isinstance(monitor, Monitor)
    # the hook Faust calls per message exists under this name, and Monitor does work in it
    assert hook in vars(Sensor) and hook in vars(Monitor)
    assert list(inspect.signature(getattr(Monitor, hook)).parameters) == \
        list(inspect.signature(getattr(type(monitor), hook)).parameters)
    assert getattr(type(monitor), hook) is not getattr(Monitor, hook)


def test_the_worker_app_uses_the_per_batch_monitor(tmp_path):
    from distillguard.streams.app import faust_app
    from distillguard.streams.settings import WorkerSettings

    settings = WorkerSettings()
    app = faust_app(settings, tmp_path, auto_offset_reset="earliest", replication_probe_topic=settings.requests_topic)
    assert type(app.monitor).__name__ == "PerBatchMonitor"
    assert "self.sensors.add(self.monitor)" in inspect.getsource(App.on_init_dependencies)


@pytest.fixture
def root_logging_restored():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _logging_of(worker) -> tuple[int, list[str]]:
    worker._setup_logging()  # what Worker.execute_from_commandline does first
    root = logging.getLogger()
    return root.level, [type(h).__name__ for h in root.handlers]


def test_faust_worker_keeps_the_root_logger_at_the_log_level(tmp_path, root_logging_restored):
    from distillguard.streams.app import faust_app
    from distillguard.streams.settings import WorkerSettings

    settings = WorkerSettings()
    app = faust_app(settings, tmp_path, auto_offset_reset="earliest", replication_probe_topic=settings.requests_topic)
    level, handlers = _logging_of(faust_compat.faust_worker(app, "warn"))
    assert level == logging.WARNING and "SpinnerHandler" not in handlers
    assert not logging.getLogger("faust.topics").isEnabledFor(logging.DEBUG)
    # what it works around: Faust's own Worker puts the root logger at DEBUG for its spinner
    level, handlers = _logging_of(faust.Worker(app, loglevel="warn", quiet=True, redirect_stdouts=False))
    assert level == logging.DEBUG and "SpinnerHandler" in handlers


def test_faust_waits_for_acks_after_ending_its_timers_and_calls_the_wait_through_the_app():
    # Stopping, Faust ends the app's timers (mode's itertimer stops once the service is stopping)
    # and then waits for the acks in App._consumer_wait_empty, called through the instance (the
    # worker's flush beside the wait replaces it there); a revocation waits there too.
    stop_consumer = inspect.getsource(App._stop_consumer)
    assert "await self._consumer_wait_empty(consumer, self.log)" in stop_consumer
    revoked = inspect.getsource(App._on_partitions_revoked)
    assert "self._consumer_wait_empty" in revoked
    # a revocation's wait that raises (RebalanceBlocked) crashes the app, which exits non-zero
    assert revoked.index("_consumer_wait_empty") < revoked.index("except Exception as exc:")
    assert "await self.crash(exc)" in revoked
    assert list(inspect.signature(App._consumer_wait_empty).parameters) == ["self", "consumer", "logger"]
    assert "await consumer.wait_empty()" in inspect.getsource(App._consumer_wait_empty)
    assert "self._unacked_messages" in inspect.getsource(Consumer.wait_empty)
    import mode

    # The stop timeout: the app is stopping (should_stop) before it waits; once the wait gave
    # up, the consumer's own stop skips a second wait and commits what was acked.
    service_stop = inspect.getsource(mode.Service.stop)
    assert service_stop.index("self._stopped_set()") < service_stop.index("await self.on_stop()")
    assert "await self._stop_consumer()" in inspect.getsource(App.on_stop)
    assert "while not self.should_stop and self._unacked_messages" in inspect.getsource(Consumer.wait_empty)
    assert "commit_and_end_transactions" in inspect.getsource(Consumer.wait_empty)
    assert "self.wait_empty()" in inspect.getsource(Consumer.on_stop)
    # ... and the stopping wait is wait_empty's loop with a deadline, through these:
    wait_empty = inspect.getsource(Consumer.wait_empty)
    assert "self._unacked_messages = WeakSet()" in inspect.getsource(Consumer.__init__)
    for step in ("gc.collect()", "await T(self.commit)()", "await T(self._wait_for_ack)(timeout=1)",
                 "self._clean_unacked_messages()", "await T(self.commit_and_end_transactions)()"):
        assert step in wait_empty, step
    # why not cancel Faust's wait instead: its wait for an ack swallows the cancellation
    assert "asyncio.CancelledError" in inspect.getsource(Consumer._wait_for_ack)
    assert "self.itertimer(" in inspect.getsource(App.timer)  # the app's timers are mode's
    itertimer = inspect.getsource(mode.Service.itertimer)
    assert "should_stop = self.should_stop" in itertimer and "break" in itertimer


class _WaitingConsumer:
    """The parts of Faust's consumer that the bounded wait uses (those of Consumer.wait_empty)."""

    def __init__(self, unacked: int):
        self._unacked_messages = set(range(unacked))
        self.commits = []

    def ack_all(self) -> None:
        self._unacked_messages.clear()

    async def commit(self):
        self.commits.append("commit")

    async def _wait_for_ack(self, timeout: float) -> None:
        await asyncio.sleep(0.01)

    def _clean_unacked_messages(self) -> None:
        pass

    async def commit_and_end_transactions(self):
        self.commits.append("end")


class _WaitingApp:
    """An app stopping (``should_stop``) or revoking partitions; Faust's own wait is never used."""

    conf = SimpleNamespace(stream_wait_empty=True)

    def __init__(self, *, should_stop: bool):
        self.should_stop = should_stop

    async def _consumer_wait_empty(self, consumer, logger):
        raise AssertionError("Faust's wait has no deadline: not used")


def _wait(app, consumer, *, acks_at: int | None, stop_timeout_s: float = 5, revoke_timeout_s: float = 5,
          installed: bool = False) -> tuple[int, float]:
    """Flushes made and seconds taken by one wait for acks; the ``acks_at``-th flush acks all."""
    flushes = []

    async def flush():
        flushes.append("flush")
        if len(flushes) == acks_at:
            consumer.ack_all()

    async def scenario() -> float:
        if not installed:
            faust_compat.flush_while_waiting_empty(app, flush, interval_s=0.01, stop_timeout_s=stop_timeout_s,
                                                   revoke_timeout_s=revoke_timeout_s)
        started = asyncio.get_running_loop().time()
        try:
            await asyncio.wait_for(app._consumer_wait_empty(consumer, None), timeout=10)
        finally:
            took, flushed = asyncio.get_running_loop().time() - started, len(flushes)
            await asyncio.sleep(0.05)
            assert len(flushes) == flushed, "the flusher outlived the wait"
        return took

    took = asyncio.run(scenario())
    return len(flushes), took


@pytest.mark.parametrize("stopping", [True, False])
def test_the_flush_runs_beside_the_wait_for_acks_until_they_come_then_commits(stopping, caplog):
    consumer = _WaitingConsumer(unacked=5)
    with caplog.at_level(logging.ERROR, logger=faust_compat.__name__):
        flushes, _ = _wait(_WaitingApp(should_stop=stopping), consumer, acks_at=3)
    assert flushes >= 3 and consumer.commits[-1] == "end"  # (one more may start as the ack lands)
    assert not consumer._unacked_messages and not caplog.records


def test_a_stopping_worker_gives_up_on_records_it_cannot_store_after_the_stop_timeout(caplog):
    consumer = _WaitingConsumer(unacked=5)  # ClickHouse down: no flush acks
    with caplog.at_level(logging.ERROR, logger=faust_compat.__name__):
        flushes, took = _wait(_WaitingApp(should_stop=True), consumer, acks_at=None, stop_timeout_s=0.2)
    # it waited the timeout, flushing (each round also collects garbage: slow in a big process)
    assert took >= 0.2 and flushes >= 1
    assert consumer.commits[-1] == "end" and len(consumer._unacked_messages) == 5  # acked offsets only
    assert any("5 records not stored after" in r.getMessage() for r in caplog.records)


def test_a_revocation_blocked_by_records_it_cannot_store_crashes_the_app_then_stops_at_once(caplog):
    consumer = _WaitingConsumer(unacked=5)
    app = _WaitingApp(should_stop=False)
    with caplog.at_level(logging.ERROR, logger=faust_compat.__name__):
        with pytest.raises(faust_compat.RebalanceBlocked, match="5 records not stored within 0.2 s"):
            _wait(app, consumer, acks_at=None, revoke_timeout_s=0.2)  # Faust crashes the app on it
    assert consumer.commits[-1] == "end" and len(consumer._unacked_messages) == 5
    assert any("a rebalance waited 0.2 s" in r.getMessage() for r in caplog.records)
    # the crash stops the app: no second wait for the same records
    app.should_stop = True
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger=faust_compat.__name__):
        _, took = _wait(app, consumer, acks_at=None, installed=True)
    assert took < 5 and consumer.commits[-1] == "end" and not caplog.records  # (5 s: the stop timeout)


def _rebalance_warnings(caplog, app, steps) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        for step in steps:
            getattr(app, step)()
    return [r.getMessage().split(": ", 1)[-1] for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_rebalance_that_ended_before_its_return_logs_no_warning(tmp_path, caplog):
    from distillguard.streams.app import faust_app
    from distillguard.streams.settings import WorkerSettings

    # Faust calls the return after the assignment callbacks, whose recovery may end the
    # rebalance (clearing its sensor state) first: what the worker's start did every time.
    assert "self.app.on_rebalance_return()" in inspect.getsource(Consumer.on_partitions_assigned)
    assert "self._rebalancing_sensor_state = None" in inspect.getsource(App.on_rebalance_end)
    settings = WorkerSettings()
    late_return = ["on_rebalance_start", "on_rebalance_end", "on_rebalance_return"]
    plain = App("plain-faust", broker="kafka://localhost:1", datadir=str(tmp_path / "plain"))
    plain.sensors.add(plain.monitor)  # (as the app adds it when it starts)
    assert _rebalance_warnings(caplog, plain, late_return) == ["Missing sensor state for rebalance #1"]

    app = faust_app(settings, tmp_path, auto_offset_reset="earliest", replication_probe_topic=settings.requests_topic)
    app.sensors.add(app.monitor)
    assert _rebalance_warnings(caplog, app, late_return) == []
    assert any("ended before its assignment returned" in r.getMessage() for r in caplog.records)
    # in order, the sensors hear all three; a return with no rebalance begun still warns
    assert _rebalance_warnings(caplog, app, ["on_rebalance_start", "on_rebalance_return", "on_rebalance_end"]) == []
    app.rebalancing = True
    assert _rebalance_warnings(caplog, app, ["on_rebalance_return"]) == ["Missing sensor state for rebalance #2"]
