"""Fault injection for the fault tests, kept out of every production settings class.

The integration tests make real processes fail the way production does (ClickHouse refusing
connections, records lost on their way to the agent) by creating a file the process watches.
These switches are read from the environment here only: they are not settings an operator
configures, so they are not in ``docs/settings.md``; unset, nothing is injected.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from ..settings import DistillguardSettings


class FaultInjection(DistillguardSettings):
    """Which fault files a process watches (none in production)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    # While this file exists every ClickHouse write fails as if ClickHouse refused the
    # connection (reads and migrations are unaffected).
    clickhouse_down_file: Path | None = Field(None, validation_alias=AliasChoices("DG_CLICKHOUSE_FAULT_FILE"))
    # When this file appears, the next 3 input records never reach the worker's agent (the
    # file is then deleted), as when Faust's fetch loop drops records in a rebalance.
    consumer_skip_file: Path | None = Field(None, validation_alias=AliasChoices("DG_CONSUMER_SKIP_FAULT_FILE"))

    # When this file appears, the packer exits (code 70) after its next envelopes are delivered
    # and before their input offsets are committed (the file is then deleted): the window in
    # which a killed packer hands the same records on twice.
    packer_crash_file: Path | None = Field(None, validation_alias=AliasChoices("DG_PACKER_CRASH_FAULT_FILE"))

    def clickhouse_down(self) -> bool:
        return self.clickhouse_down_file is not None and self.clickhouse_down_file.exists()
