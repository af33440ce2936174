"""Kafka and worker settings: frozen pydantic-settings objects, every field readable from ``DG_*`` env.

``KafkaSettings`` is how to reach Kafka (bootstrap, security protocol, SASL, TLS, replication):
one set of ``DG_KAFKA_*`` variables for the worker, the router and the CLI's producers, which
inherit it. The same names configure the embedded broker (demo, tests) and Apache Kafka in
production (``docker-compose.yml``, ``deploy/``).
"""
from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from distillguard.settings import DistillguardSettings


class KafkaSettings(DistillguardSettings):
    """How every component reaches Kafka (``DG_KAFKA_*``, ``DG_REPLICATION_FACTOR``).

    Each field names its variables itself, so a subclass with another env prefix (the
    router's ``DG_ROUTER_``) reads the same ones.
    """

    model_config = SettingsConfigDict(env_prefix="DG_", frozen=True, extra="ignore", populate_by_name=True)

    # Kafka bootstrap servers (host:port, comma-separated).
    kafka_bootstrap: str = Field("127.0.0.1:9092", validation_alias=AliasChoices(
        "DG_KAFKA_BOOTSTRAP", "KAFKA_BOOTSTRAP_SERVERS"))
    # Security for production Kafka: SASL/SCRAM over TLS.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", validation_alias=AliasChoices("DG_KAFKA_SECURITY_PROTOCOL"))
    # SASL/SCRAM credentials (the password is a secret, never logged).
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] | None = Field(
        None, validation_alias=AliasChoices("DG_KAFKA_SASL_MECHANISM"))
    kafka_sasl_username: str | None = Field(None, validation_alias=AliasChoices("DG_KAFKA_SASL_USERNAME"))
    kafka_sasl_password: SecretStr | None = Field(None, validation_alias=AliasChoices("DG_KAFKA_SASL_PASSWORD"))
    # CA bundle for TLS.
    kafka_ssl_cafile: Path | None = Field(None, validation_alias=AliasChoices("DG_KAFKA_SSL_CAFILE"))
    # Replication factor of every topic distillguard creates (the pipeline's, the router's and
    # the Faust changelogs of their tables). -1: the broker's default.replication.factor
    # (KIP-464), so a managed Kafka that requires 3 replicas gets 3 and a one-broker setup 1.
    # Read by the workers and the router alike: one setting for the whole deployment.
    replication_factor: int = Field(-1, ge=-1, le=32767, validation_alias=AliasChoices("DG_REPLICATION_FACTOR"))
    # Standby replicas of every Faust table (key state, link members, the router's incidents):
    # a standby keeps a warm copy on another worker, so a lost worker's partitions resume
    # without reading the changelog from its start. 0: none; needs more workers than this.
    table_standby_replicas: int = Field(0, ge=0, le=16, validation_alias=AliasChoices("DG_TABLE_STANDBY_REPLICAS"))

    @model_validator(mode="after")
    def _replication_factor_is_positive_or_the_brokers(self) -> "KafkaSettings":
        if self.replication_factor == 0:
            raise ValueError("DG_REPLICATION_FACTOR must be -1 (the broker's default) or at least 1, not 0")
        return self

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> "KafkaSettings":
        if self.kafka_security_protocol.startswith("SASL") and not (
                self.kafka_sasl_mechanism and self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError("SASL needs DG_KAFKA_SASL_MECHANISM, DG_KAFKA_SASL_USERNAME and DG_KAFKA_SASL_PASSWORD")
        return self

    def confluent_config(self) -> dict[str, str]:
        """librdkafka settings for confluent-kafka clients (producers, admin, CLI tools)."""
        conf = {"bootstrap.servers": self.kafka_bootstrap, "security.protocol": self.kafka_security_protocol}
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
            conf["sasl.username"] = self.kafka_sasl_username or ""
            conf["sasl.password"] = self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else ""
        if self.kafka_ssl_cafile:
            conf["ssl.ca.location"] = str(self.kafka_ssl_cafile)
        return conf

    def faust_credentials(self):
        """Faust's ``broker_credentials`` for this security protocol (None for PLAINTEXT)."""
        import faust

        if self.kafka_security_protocol == "PLAINTEXT":
            return None
        context = ssl.create_default_context(cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None)
        if self.kafka_sasl_mechanism:
            return faust.SASLCredentials(
                username=self.kafka_sasl_username,
                password=self.kafka_sasl_password.get_secret_value(),
                mechanism=self.kafka_sasl_mechanism,
                ssl_context=context if self.kafka_security_protocol == "SASL_SSL" else None,
            )
        return faust.SSLCredentials(context)


class WorkerSettings(KafkaSettings):
    """Topics and worker behaviour (env prefix ``DG_``); Kafka from :class:`KafkaSettings`."""

    app_id: str = "distillguard"
    requests_topic: str = "llm.requests"
    # Batch envelopes of requests_topic written by `distillguard packer` (streams/packer.py): the
    # same partitions, partition p packed into partition p.
    packed_topic: str = "llm.requests.packed"
    # True: the worker reads packed_topic instead of requests_topic, paying Faust's per-message
    # cost once per envelope (its rows, dead letters and key state still name requests_topic and
    # the source offsets, so a deployment can switch either way). Needs `distillguard packer`.
    read_packed: bool = False
    dlq_topic: str = "llm.requests.dlq"
    alerts_topic: str = "distill.alerts"
    # On-call feedback (ack, resolve, false positive, snooze): a false positive suppresses the
    # entity's next alerts in the worker too. Shared with the router and the feedback commands.
    feedback_topic: str = "distill.feedback"
    # Link records of extraction-like traffic for the cross-key (hydra) detector: one
    # partition, because linking keys into clusters needs the global view.
    links_topic: str = "distill.links"
    # Link values (payment fingerprint, account, IP prefix, ASN + user agent, prompt frames) of
    # extraction-like events, keyed by the value: each value's members live in a changelogged
    # table partitioned like this topic, and only the joins it finds go to the links topic.
    link_values_topic: str = "distill.link-values"
    # True: the partitioned link-values stage (topic, agent, changelogged table per value).
    # Off by default: it cost more than half of end-to-end throughput here. Off, link values
    # are judged in the one-partition cluster agent (bounded by max_links), as replay does.
    link_values_partitioned: bool = False
    links_retention_ms: int = Field(7 * 86_400_000, gt=0)
    # A link value idle for this many linking windows (1 h each) is dropped from its table.
    link_idle_windows: int = Field(6, ge=2)
    link_expiry_interval_s: float = Field(60.0, gt=0)  # how often idle link values are looked for
    # Idle is judged against the slowest input partition's event time; one that sent no link value
    # for this long (wall time) stops holding that clock back (models.clusters.SenderClock).
    link_sender_quiet_s: float = Field(300.0, gt=0)
    # How often each worker tells every link-values partition how far its input partitions have
    # sent values: a new cluster incident waits until all have judged its members' values.
    link_progress_interval_s: float = Field(1.0, gt=0)
    partitions: int = Field(8, ge=1, le=1024)

    data_dir: Path = Path("var")
    # The web endpoint's listen address: loopback unless configured. Beyond loopback the worker
    # needs web_token and refuses to start without one (streams/web.py). DG_WEB_HOST is its
    # former name, still read: a deployment that set it to 0.0.0.0 then stops with the reason
    # instead of going quietly deaf to its probes.
    web_bind: str = Field("127.0.0.1", validation_alias=AliasChoices("DG_WEB_BIND", "DG_WEB_HOST"))
    # Bearer token every web endpoint but /health asks for when set (`Authorization: Bearer T`).
    web_token: SecretStr | None = None
    web_port: int = Field(6066, ge=0, le=65535)
    session_timeout_s: float = Field(8.0, gt=0)
    # Static group membership (Kafka group.instance.id, KIP-345): a worker restarted under
    # the same id takes its partitions back at once, without a rebalance and without waiting
    # DG_SESSION_TIMEOUT_S for its killed predecessor's session to expire (a worker killed
    # every 16 s made no progress: each resume waited 12-14 s). One id per worker, stable
    # across its restarts: deploy/k8s sets the pod name (kept when the container restarts).
    # The cost: a static member does not leave the group when it stops, so a worker stopped
    # for good holds its partitions until its session expires. Unset: dynamic membership.
    group_instance_id: str | None = Field(None, min_length=1, max_length=249)
    commit_interval_s: float = Field(1.0, gt=0)
    # The worker flushes this often while records wait (rows stored in one ClickHouse insert for
    # all partitions, states changelogged, offsets acked); sooner when the sink holds
    # DG_CLICKHOUSE_BATCH_ROWS rows (or its oldest DG_CLICKHOUSE_BATCH_AGE_S). No alert waits for
    # it (alerts leave from the step); link records for the cluster agent and commits do. 1 s,
    # not 0.5: each chDB insert costs ~45 ms of CPU whatever its size, and at 3,500 events/s
    # into one packed worker the worker spent 4-9 % less CPU per event (4 paired runs,
    # benchmarks/results/latency-flush-interval.md).
    flush_interval_s: float = Field(1.0, gt=0)
    # Asked to stop (SIGTERM), the worker stores, acks and commits what it processed; records it
    # cannot store within this long (ClickHouse down) are left uncommitted for the partitions'
    # next owner and the worker exits. Keep it below the orchestrator's grace period (k8s's
    # default and compose's stop_grace_period here: 30 s; deploy/k8s gives 60 s).
    stop_timeout_s: float = Field(20.0, gt=0)
    # A rebalance waits for the revoked partitions' records to be stored and acked; records it
    # cannot store within this long (ClickHouse down) make the worker exit non-zero, to be
    # restarted: else the whole group waits for it and no worker detects anything.
    revoke_timeout_s: float = Field(30.0, gt=0)
    # How long a fetch may wait at the broker for records. Faust fixes it at 1,500 ms; the
    # embedded tansu broker holds every fetch that long, which made it the floor of event ->
    # alert latency (p50 1.5 s at 600 events/s; 0.24 s with 100 ms).
    consumer_fetch_max_wait_ms: int = Field(100, ge=1, le=1500)
    # An event whose ts is this far ahead of the worker's clock is a producer bug: dead-letter it.
    max_future_s: float = Field(24 * 3600.0, gt=0)
    # Out-of-order events: one whose event time is more than this before its key's last applied
    # event time is stored in ClickHouse (rollups by event time) but not fed to the key's detector.
    allowed_lateness_s: float = Field(900.0, ge=0)
    # Dead letters keep at most this many bytes of the original record (with dg.truncated and
    # dg.original.size headers beyond it): under Kafka's default 1 MiB message limit.
    dlq_max_bytes: int = Field(900_000, ge=1024)
    # An input partition with records waiting whose next offset has not moved for this long
    # is reported stalled (/health, distillguard_consumer_partition_stalled): page on it.
    stall_after_s: float = Field(120.0, gt=0)
    # An input partition whose records wait beyond the last one processed, with nothing of it
    # handed over for this long (not paused, no table recovery, ClickHouse taking rows), has
    # its records read back from the broker: a hole at the partition's end, which no later
    # record reveals (seen after broker restarts: Faust handed nothing more of one partition).
    refill_after_s: float = Field(20.0, gt=0)
    # Faust's table recovery after a rebalance waits, with no timeout, to read each changelog
    # partition to its end; after a broker restart it was seen to read nothing, ever (1 run
    # in 4 on noida). Recovery with no changelog progress for this long is restarted once,
    # then reported (/health 503, distillguard_table_recovery_stalled) for a restart.
    recovery_stall_s: float = Field(60.0, gt=0)
    # ClickHouse flushes failing without a break for this long make /health answer 503 (the
    # sink is not catching up by retrying; distillguard_sink_failing_seconds shows how long).
    sink_failing_unhealthy_s: float = Field(300.0, gt=0)
    # How often each input partition's log is checked for having been replaced under a running
    # worker (broker back empty, topic recreated, and the worker's fetch position still valid
    # in the new log): the broker's record at an offset stored earlier is compared with the row.
    epoch_check_interval_s: float = Field(30.0, gt=0)
    # Per-entity overrides of the key detector (YAML or JSON): allowlisted keys and accounts,
    # threshold scales per key or account, thresholds, minimum events before any alert. Read
    # at start; a bad file stops the worker with the reason (never a silent default).
    detector_overrides_file: Path | None = None
    # The secret key of the detector's re-run sample (models.reruns: which of a key's prompts
    # are sampled to tell an evaluation's re-runs), up to 64 bytes, the same in every worker and
    # in replay (a different key samples other items: the evidence starts afresh). Unset, the
    # public default: an attacker who reads the code can tell which items are sampled.
    detector_sample_key: SecretStr | None = None
    # Alerts already on the alerts topic are not sent again (a restart re-applies the events
    # after the last commit, which raise them again): the worker learns them from the last
    # alert_dedup_tail records of each alerts partition, before its first alert and after each
    # rebalance, and remembers at most alert_dedup_max. The tail must reach back past the
    # alerts of the uncommitted events: alerts are rare (an incident's escalations), 10,000 a
    # partition reaches back days.
    alert_dedup_tail: int = Field(10_000, ge=1)
    alert_dedup_max: int = Field(200_000, ge=1)
    # Exculpated detections (contracts.alert.is_exculpated: an incident held at info on a real
    # product's or one mature account's evidence) are recorded in ClickHouse (``exculpated``)
    # and not sent on the alerts topic: each would alert on a benign key for no action. True
    # sends them as info alerts as well (the behaviour before; replay: --send-exculpated).
    send_exculpated: bool = False
    # Keys idle for longer are evicted from the state table (bounded state).
    key_idle_ttl_s: float = Field(14 * 86400.0, gt=0)
    log_level: str = "warn"

    @property
    def input_topic(self) -> str:
        """The topic the worker consumes: the packed one with DG_READ_PACKED, else requests_topic."""
        return self.packed_topic if self.read_packed else self.requests_topic

    def detector_config(self, path: Path | None = None):
        """The key detector's config: defaults, with ``path`` (or DG_DETECTOR_OVERRIDES_FILE)
        applied. Raises :class:`~distillguard.errors.OverridesError` (a ``ConfigError``) naming
        the file and what is wrong in it."""
        from distillguard.errors import OverridesError
        from distillguard.models.pipeline import DetectorConfig

        path = path or self.detector_overrides_file
        config = DetectorConfig()
        if path is not None:
            import yaml  # JSON is YAML too

            try:
                overrides = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
                config = DetectorConfig.from_mapping(overrides)
            except (OSError, yaml.YAMLError, ValueError) as exc:
                raise OverridesError(f"detector overrides {path}: {exc}") from None
        if self.detector_sample_key is not None:
            try:
                config = dataclasses.replace(config, sample_key=self.detector_sample_key.get_secret_value())
            except ValueError as exc:  # (DetectorConfig checks the key's length)
                raise OverridesError(f"DG_DETECTOR_SAMPLE_KEY: {exc}") from None
        return config
