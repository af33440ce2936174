"""Sink errors, rooted in the project's one error class."""
from __future__ import annotations

from distillguard.errors import DistillguardError


class SinkError(DistillguardError):
    """Something went wrong writing to or reading from an output."""


class SinkUnavailable(SinkError):
    """The output (ClickHouse) cannot be reached or refused the write."""


class RowsRejected(SinkError):
    """The output refuses these rows (a value that does not fit its column): retrying cannot
    help, so the sink isolates them and dead-letters them instead (see ClickHouseSink.flush)."""


class SchemaError(SinkError):
    """The database schema is not what this version expects and cannot be migrated."""


class SinkBackpressureError(SinkError):
    """The sink's buffer is full because the output is failing or slow (quix-streams' shape).

    The caller should stop taking input for ``retry_after`` seconds and try again: the
    backlog then waits in Kafka (consumer lag), not in worker memory.
    """

    def __init__(self, retry_after: float, reason: str = "sink buffer full") -> None:
        super().__init__(f"{reason}; retry after {retry_after:g}s")
        self.retry_after = retry_after
