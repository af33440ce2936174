"""The feedback commands (entity names, snooze durations) and evidence references."""
from __future__ import annotations

import pytest

from distillguard.evidence import incident_alert_id
from distillguard.feedback import split_entity


@pytest.mark.parametrize("entity, expected", [
    ("k1", ("key", "k1")), ("cluster:abc", ("cluster", "abc")), ("account:a:b", ("account", "a:b")),
    ("weird:id", ("key", "weird:id")),
])
def test_split_entity(entity, expected):
    assert split_entity(entity) == expected


@pytest.mark.parametrize("reference, expected", [
    ("key:k1:3", ("alert_id", "key:k1:3")), ("dg:key:k1:3", ("alert_id", "key:k1:3")),
    ("dg:key:k1:3:r2", ("alert_id", "key:k1:3")), ("cluster:c1", ("alert_id", "cluster:c1")),
    ("dg:cluster:c1", ("alert_id", "cluster:c1")), ("key:k1", ("entity", "key:k1")),
])
def test_evidence_accepts_alert_ids_dedup_keys_and_entities(reference, expected):
    assert incident_alert_id(reference) == expected


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("45", 45)])
def test_snooze_durations(text, seconds):
    from distillguard.cli import _duration_s

    assert _duration_s(text) == seconds

