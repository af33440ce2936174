"""Prometheus metrics of one worker, served on ``/metrics`` by the worker's web endpoint."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


# Seconds: a healthy worker's delays are sub-second; minutes and hours are a backlog.
_DELAY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 5.0, 15.0, 60.0, 300.0, 3600.0)


class WorkerMetrics:
    """One registry per worker app (tests build several apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("distillguard_events_processed", "Events scored by the per-key detector", registry=r)
        self.duplicates = Counter("distillguard_events_duplicate",
                                  "Events skipped because the key's state already covers them", registry=r)
        self.dead_letter_errors = Counter("distillguard_dead_letter_errors",
                                          "Records that failed and could not be dead-lettered either (logged "
                                          "with their partition and offset)", registry=r)
        self.late = Counter("distillguard_events_late",
                            "Events later than the allowed lateness: stored, not learned by the detector", registry=r)
        self.dead_letters = Counter("distillguard_dead_letters", "Records sent to the dead-letter topic",
                                    ["reason"], registry=r)
        self.alerts = Counter("distillguard_alerts", "Alerts sent (new incidents and escalations)",
                              ["severity"], registry=r)
        self.backpressure = Counter("distillguard_sink_backpressure",
                                    "Times the ClickHouse sink pushed back and consumption paused", registry=r)
        self.sink_errors = Counter("distillguard_sink_errors", "Failed ClickHouse flushes (retried)", registry=r)
        self.sink_rejected = Counter("distillguard_sink_rejected_rows",
                                     "Rows ClickHouse refused (a value that does not fit its column): "
                                     "dead-lettered, not retried", ["table"], registry=r)
        self.clamped = Counter("distillguard_events_clamped",
                               "Events with a field changed to fit its column (clamped to the column's "
                               "range, an invalid ASN unknown, lone surrogates replaced)", ["field"], registry=r)
        self.sink_flush_seconds = Histogram("distillguard_sink_flush_seconds", "ClickHouse flush latency",
                                            registry=r)
        self._delay_histograms(r)
        self.cluster_errors = Counter("distillguard_cluster_errors", "Link records the cluster detector failed on",
                                      registry=r)
        self.alerts_deduplicated = Counter("distillguard_alerts_deduplicated",
                                           "Alerts raised again after a restart or rebalance and not sent: "
                                           "already on the alerts topic", registry=r)
        self.alerts_suppressed = Counter("distillguard_alerts_suppressed",
                                         "Alerts not sent: their entity was marked a false positive",
                                         ["entity_type"], registry=r)
        self.alerts_exculpated = Counter("distillguard_alerts_exculpated",
                                         "Exculpated detections recorded in ClickHouse, not sent: incidents held at "
                                         "info on exculpatory evidence (a real product, one mature account)",
                                         ["entity_type"], registry=r)
        self.holes = Counter("distillguard_consumer_holes",
                             "Input records that never reached the worker's agent and were read back from "
                             "the broker", registry=r)
        self.hole_errors = Counter("distillguard_consumer_hole_errors",
                                   "Holes in an input partition the worker could not read back (logged with "
                                   "their offsets)", registry=r)
        self.link_values_expired = Counter("distillguard_link_values_expired",
                                           "Link values dropped from the link-members table after idling",
                                           registry=r)
        self.incidents_held = Gauge("distillguard_cluster_incidents_held",
                                    "New cluster incidents waiting for every link-values partition to judge their "
                                    "members' values (DG_LINK_VALUES_PARTITIONED)", registry=r)
        self._health_gauges(r)
        # Events processed, counted as a plain int per event (a Prometheus counter takes a lock
        # on every inc) and added to ``events`` per flush and before each scrape.
        self.events_tally = 0

    def _delay_histograms(self, r: CollectorRegistry) -> None:
        """How long alerts and input waited, and how late the event loop woke."""
        # From the step that raised an alert to its send (its own task, or the flush's retry
        # after a failed send), not the input's lag. What on-call reads when pages come late.
        self.alert_hold_seconds = Histogram("distillguard_alert_hold_seconds",
                                            "Seconds an alert waited in the worker between being raised and sent",
                                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0,
                                                     2.0, 5.0, 15.0, 60.0),
                                            registry=r)
        # Detection delay as on-call sees it, two halves. Input age: how long a message (an envelope
        # behind the packer, else one request) waited on its topic before the worker stepped it
        # (its broker timestamp to the step; observed once a message, not per event): the worker
        # falling behind shows here in seconds, where consumer_lag counts records. Alert delay:
        # from the event that raised an alert (its ts, the gateway's clock) to the alert's send,
        # the pipeline's whole event -> page time; a backfill or a restart's catch-up lands in
        # the top buckets.
        self.input_age_seconds = Histogram("distillguard_input_age_seconds",
                                           "Seconds an input message waited on its topic before the worker "
                                           "stepped it (broker timestamp to step)",
                                           buckets=_DELAY_BUCKETS, registry=r)
        self.alert_delay_seconds = Histogram("distillguard_alert_delay_seconds",
                                             "Seconds from the event that raised an alert (its ts) to the "
                                             "alert's send", buckets=_DELAY_BUCKETS, registry=r)
        # How late the loop's watcher woke up (streams/loop_lag.py): the longest callback that
        # held the one loop of the agents, flushes and pages, which every event queued behind it waits out.
        self.event_loop_lag_seconds = Histogram("distillguard_event_loop_lag_seconds",
                                                "Seconds the worker's event loop woke a 0.1 s timer late (how long "
                                                "callbacks held it)",
                                                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                                                         10.0),
                                                registry=r)

    def _health_gauges(self, r: CollectorRegistry) -> None:
        """What /health and the alert rules of deploy/prometheus read: state, lag, stalls."""
        self.keys = Gauge("distillguard_keys_in_state", "Keys held in this worker's state table", registry=r)
        self.state_bytes = Gauge("distillguard_state_bytes", "Bytes of per-key state held in this worker's table",
                                 registry=r)
        self.lag = Gauge("distillguard_consumer_lag", "Records between the last one processed and the partition's "
                         "high watermark", ["topic", "partition"], registry=r)
        self.stalled = Gauge("distillguard_consumer_partition_stalled",
                             "1 while an input partition has records waiting and its next offset has not "
                             "moved for DG_STALL_AFTER_S", ["topic", "partition"], registry=r)
        self.recovery_stalled = Gauge("distillguard_table_recovery_stalled",
                                      "1 while Faust's table recovery has read no changelog record for "
                                      "DG_RECOVERY_STALL_S after being restarted once (the worker reports "
                                      "itself unhealthy)", registry=r)
        self.recovery_restarts = Counter("distillguard_table_recovery_restarts",
                                         "Table recoveries restarted after DG_RECOVERY_STALL_S without progress",
                                         registry=r)
        self.commit_errors = Counter("distillguard_consumer_commit_errors",
                                     "Offset commits that raised (retried on the next tick)", registry=r)
        self.commit_stalled = Gauge("distillguard_consumer_commit_stalled",
                                    "1 while an input partition has records beyond its committed offset and "
                                    "that offset has not moved for DG_STALL_AFTER_S (/health answers 503)",
                                    ["topic", "partition"], registry=r)
        self.sink_failing_seconds = Gauge("distillguard_sink_failing_seconds",
                                          "Seconds ClickHouse flushes have been failing without a break (0: the "
                                          "last one succeeded); /health answers 503 from "
                                          "DG_SINK_FAILING_UNHEALTHY_S", registry=r)
        self.epochs = Counter("distillguard_partition_epochs",
                              "New logs detected on an input partition (offsets went back below what was "
                              "stored, with other records: broker restarted empty, topic recreated)",
                              ["topic", "partition"], registry=r)
        self.epoch_undecided_seconds = Gauge("distillguard_partition_epoch_undecided_seconds",
                                             "Longest time an input partition's offsets have gone back below what "
                                             "was stored with no record yet telling a re-read from a new log",
                                             registry=r)
        self.sink_buffered = Gauge("distillguard_sink_buffered_rows", "Rows buffered in the ClickHouse sink",
                                   registry=r)

    def publish_tallies(self) -> None:
        tally, self.events_tally = self.events_tally, 0
        if tally:
            self.events.inc(tally)

    def sample_names(self) -> set[str]:
        """The sample names /metrics can show (counters with ``_total``, histograms with their
        series): what dashboards and alert rules may query."""
        names = set()
        for family in self.registry.collect():
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(family.type, [""])
            names.update(family.name + s for s in suffixes)
        return names

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
