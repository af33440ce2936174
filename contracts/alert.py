"""The alert contract, ``distill.alert.v1`` (``contracts/alert.v1.schema.json``), as types.

One severity order (:class:`Severity`), one time format (:func:`iso_time`, :func:`iso_ms`) and
the alert itself (:class:`Alert`, with :meth:`Alert.to_bytes` / :meth:`Alert.parse`), used by
the detectors that raise alerts, the worker that sends them, the sink that stores them, the
router that pages them and the dashboard that shows them.

>>> Severity.of_rank(3), Severity.rank_of("warning"), Severity.rank_of("loud")
(<Severity.CRITICAL: 'critical'>, 2, 0)
>>> iso_ms(1_770_000_000_123)
'2026-02-02T02:40:00.123Z'
>>> alert = Alert.parse(b'{"schema":"distill.alert.v1","alert_id":"key:k1:1","entity_type":"key",'
...                     b'"entity_id":"k1","severity":"warning","score":0.7}')
>>> alert.severity, alert.score, alert.to_bytes()[:40]
(<Severity.WARNING: 'warning'>, 0.7, b'{"schema":"distill.alert.v1","alert_id":')
>>> Alert.parse(b'{"schema":"distill.alert.v1","severity":"loud"}')
BadAlert(reason="field 'alert_id' missing or not a string")
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .wire import record_bytes, record_of

SCHEMA = "distill.alert.v1"


class Severity(str, enum.Enum):
    """An alert's severity, in rising order (its ``rank``: 1, 2, 3; 0 is "below info").

    A ``str`` too, so it compares equal to, and serialises as, the wire value (``"critical"``).
    """

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _ORDER.index(self) + 1

    @classmethod
    def of_rank(cls, rank: int) -> "Severity":
        """The severity of ``rank`` (1 = info ... 3 = critical)."""
        if not 1 <= rank <= len(_ORDER):
            raise ValueError(f"no severity of rank {rank}")
        return _ORDER[rank - 1]

    @classmethod
    def rank_of(cls, value: Any) -> int:
        """``value``'s rank, 0 when it is not a severity (a consumer never fails on one)."""
        try:
            return cls(value).rank
        except ValueError:
            return 0


_ORDER = tuple(Severity)


def iso_time(moment: datetime) -> str:
    """The one time format of every record distillguard writes: RFC 3339 in UTC, milliseconds,
    ``Z`` (``2026-02-01T05:00:00.000Z``)."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_ms(ts_ms: int) -> str:
    """:func:`iso_time` of an epoch time in milliseconds (an event's ``ts_ms``)."""
    return iso_time(datetime.fromtimestamp(ts_ms / 1000, timezone.utc))


@dataclass(frozen=True, slots=True)
class BadAlert:
    """Why a record on the alerts topic is not an alert v1: returned as data, never raised."""

    reason: str


# The wire order of an alert's fields (every producer writes them in this order).
_FIELDS = ("alert_id", "ts", "entity_type", "entity_id", "api_key_ids", "score", "severity", "reasons",
           "events_seen", "detector")
_IDENTITY = ("alert_id", "entity_type", "entity_id")


@dataclass(frozen=True, slots=True)
class Alert:
    """One ``distill.alert.v1`` record. Fields a record left out are ``None`` and stay out of
    :meth:`to_dict`; fields the schema does not name are kept in ``extra`` (producers evolve
    first, consumers pass on what they do not know)."""

    alert_id: str
    entity_type: str
    entity_id: str
    severity: Severity
    ts: str | None = None
    api_key_ids: list[str] | None = None
    score: float | None = None
    reasons: list[dict] | None = None
    events_seen: int | None = None
    detector: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, record: dict) -> "Alert | BadAlert":
        """An alert from a decoded record, or why it is not one."""
        if record.get("schema") != SCHEMA:
            return BadAlert(f"schema is not {SCHEMA}")
        for name in (*_IDENTITY, "severity"):
            if not isinstance(record.get(name), str) or not record[name]:
                return BadAlert(f"field {name!r} missing or not a string")
        if not Severity.rank_of(record["severity"]):
            return BadAlert(f"severity {record['severity']!r} is not one of {[s.value for s in Severity]}")
        known = {name: record.get(name) for name in _FIELDS}
        known["severity"] = Severity(record["severity"])
        extra = {k: v for k, v in record.items() if k != "schema" and k not in _FIELDS}
        return cls(**known, extra=extra)

    @classmethod
    def parse(cls, value: bytes | None) -> "Alert | BadAlert":
        """An alert from its bytes on ``distill.alerts``, or why they are not one."""
        record = record_of(value)
        return BadAlert(record) if isinstance(record, str) else cls.from_dict(record)

    def to_dict(self) -> dict:
        """The record, in the wire order, without the fields it left out."""
        record: dict = {"schema": SCHEMA}
        for name in _FIELDS:
            value = getattr(self, name)
            if value is not None:
                record[name] = value.value if isinstance(value, Severity) else value
        record.update(self.extra)
        return record

    def to_bytes(self) -> bytes:
        """The record as sent on ``distill.alerts``: compact JSON, UTF-8."""
        return alert_bytes(self.to_dict())


alert_bytes = record_bytes  # an alert producer's dict as its bytes on distill.alerts

# The reasons with which a detector holds an incident at info on exculpatory evidence: a real
# product's traffic (``exculpatory``), or one mature account's own incident, whose keys' own
# incidents page (``severity_capped``).
CAPPING_SIGNALS = frozenset({"exculpatory", "severity_capped"})


def is_exculpated(record: dict) -> bool:
    """Whether an alert record is an *exculpated detection*: an incident at info that the
    detector holds there on exculpatory evidence (:data:`CAPPING_SIGNALS`). The workers and
    replay record these (ClickHouse ``exculpated``) instead of sending them on
    ``distill.alerts``, unless ``DG_SEND_EXCULPATED`` is set: each would be a benign key
    alerted for no action. The same incident escalating (the evidence lapses) is sent.

    >>> capped = {"severity": "info", "reasons": [{"signal": "exculpatory", "value": "app_conversations"}]}
    >>> is_exculpated(capped), is_exculpated(dict(capped, severity="warning")), is_exculpated({"severity": "info"})
    (True, False, False)
    """
    return record.get("severity") == "info" and any(
        isinstance(reason, dict) and reason.get("signal") in CAPPING_SIGNALS for reason in record.get("reasons") or ())


def split_exculpated(records: list[dict], send_exculpated: bool = False) -> tuple[list[dict], list[dict]]:
    """``records`` as the workers route them: (sent on ``distill.alerts``, exculpated detections
    recorded instead); with ``send_exculpated`` (``DG_SEND_EXCULPATED``) every one is sent and
    none is held.

    >>> capped = {"severity": "info", "reasons": [{"signal": "severity_capped"}]}
    >>> split_exculpated([capped, {"severity": "warning"}]), split_exculpated([capped], True)
    (([{'severity': 'warning'}], [{'severity': 'info', 'reasons': [{'signal': 'severity_capped'}]}]), ([{'severity': 'info', 'reasons': [{'signal': 'severity_capped'}]}], []))
    """
    if send_exculpated:
        return list(records), []
    sent, held = [], []
    for record in records:
        (held if is_exculpated(record) else sent).append(record)
    return sent, held
