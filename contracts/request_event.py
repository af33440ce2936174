"""The request event contract, ``llm.request.v1`` (``contracts/request-event.v1.schema.json``).

The typed event is the msgspec struct the worker decodes every record into; it lives beside its
decoder in ``models/events.py`` (the hot path) and is named here among the other contracts, so a
producer or consumer of ``llm.requests`` finds it where it finds the alert, feedback and action.
"""
from __future__ import annotations

from distillguard.models.events import SCHEMA, BadRecord, RequestEvent, parse_event

__all__ = ["SCHEMA", "BadRecord", "RequestEvent", "parse_event"]
