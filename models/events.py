"""Request event v1: decoding and validation (``../shared/contract/request-event.v1.schema.json``).

Errors are data: :func:`parse_event` never raises on bad input, it returns a
:class:`BadRecord` carrying the original bytes and a reason that an operator can read on
the dead-letter topic. The validator is hand-written (not jsonschema) because it sits on
the hot path of every worker; ``tests/unit/models/test_events.py`` checks it against the
contract's JSON schema.

>>> ev = parse_event(b'{"schema":"llm.request.v1","event_id":"e1","ts":"2026-02-01T00:00:00Z",'
...                  b'"api_key_id":"k1","account_id":"a1","model":"m","prompt":"hi"}')
>>> ev.api_key_id, ev.ts_ms
('k1', 1769904000000)
>>> parse_event(b'{"schema":"llm.request.v1"}').reason
'missing required field: event_id'
>>> parse_event(b'\\xff').reason
'not valid UTF-8'
"""
from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import msgspec

from .columns import MAX_EXACT_INT, column_range

SCHEMA = "llm.request.v1"
MAX_EVENT_BYTES = 256 * 1024
MAX_ID_LEN = 128
MAX_DEPTH = 16
# Event time must fall in a sane window: far-future or prehistoric timestamps are producer
# bugs and would poison windows, rollups and TTLs downstream.
MIN_TS_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_TS_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z

REQUIRED = ("schema", "event_id", "ts", "api_key_id", "account_id", "model", "prompt")


# Not frozen: a frozen dataclass sets each field through object.__setattr__, ~0.4 us a
# field, and one of these is built for every event (benchmarks/decode.py). Treat it as
# immutable; unsafe_hash keeps it hashable by value, as frozen did.
@dataclass(slots=True, unsafe_hash=True)
class RequestEvent:
    """One validated request. ``prompt``/``system_prompt`` are only read to featurize."""

    event_id: str
    ts_ms: int
    api_key_id: str
    account_id: str
    model: str
    prompt: str
    org_id: str | None = None
    endpoint: str | None = None
    system_prompt: str | None = None
    conversation_id: str | None = None
    turn_index: int = 0
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stream: bool | None = None
    tools: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    status: int | None = None
    latency_ms: int | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    asn: int | None = None
    country: str | None = None
    account_created_ms: int | None = None
    payment_fingerprint: str | None = None
    tier: str | None = None
    # Fields whose value did not fit where it goes and was changed to fit (see
    # _FIT_TO_COLUMN and _repaired): counted by the worker, never silently.
    clamped: tuple[str, ...] = ()


@dataclass(slots=True, frozen=True)
class BadRecord:
    """A record that failed validation: the original bytes and why."""

    reason: str
    raw: bytes


class _Invalid(Exception):
    pass


# Identity fields key state, deduplication and incidents: a value that is not valid Unicode
# (a lone surrogate such as "\ud800", legal in JSON escapes, unencodable as UTF-8) cannot be
# stored as sent, and changing it would merge it with another key's; the record is
# dead-lettered. Other strings (model, endpoint, client details...) are claims the client
# chooses: rejecting them would let a client hide requests from the detector, so their lone
# surrogates become U+FFFD and the field is counted as clamped.
_IDENTITY_FIELDS = frozenset({"event_id", "api_key_id", "account_id", "org_id"})
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")  # a valid pair decodes to one astral character


def _unicode_ok(value: str) -> bool:
    return value.isascii() or not _LONE_SURROGATE.search(value)


# Integer fields stored in an ``events`` column (models.columns): a value above the column's
# maximum is clamped to it (a claim of 5e9 output tokens still reads as a huge answer), one
# outside the column's range that has no sensible nearest value (an ASN) is stored as unknown.
# (JSON path, column, "clamp" | "unknown")
_FIT_TO_COLUMN = (
    ("usage.input_tokens", "input_tokens", "clamp"),
    ("usage.output_tokens", "output_tokens", "clamp"),
    ("latency_ms", "latency_ms", "clamp"),
    ("status", "status", "clamp"),
    ("client.asn", "asn", "unknown"),
)
_FIT_RANGES = tuple((*fit, column_range(fit[1])) for fit in _FIT_TO_COLUMN)  # (looked up once, not per event)


def parse_rfc3339_ms(value: str) -> int:
    """RFC 3339 timestamp -> epoch milliseconds (UTC). Raises ``ValueError``.

    >>> parse_rfc3339_ms("2026-02-01T00:00:47.883Z")
    1769904047883
    >>> parse_rfc3339_ms("2026-02-01T01:00:00+01:00")
    1769904000000
    """
    if not isinstance(value, str) or len(value) < 20 or value[10] not in "Tt ":
        raise ValueError("not an RFC 3339 timestamp")
    text = value[:-1] + "+00:00" if value[-1] in "Zz" else value
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError("timestamp has no UTC offset")
    return int(round(dt.timestamp() * 1000))


def _str(obj: dict, name: str, *, required: bool = False, max_len: int | None = None,
         min_len: int = 0) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise _Invalid(f"missing required field: {name}" if name not in obj else f"{name}: null")
        return None
    if not isinstance(value, str):
        raise _Invalid(f"{name}: expected string, got {type(value).__name__}")
    if len(value) < min_len:
        raise _Invalid(f"{name}: empty")
    if max_len is not None and len(value) > max_len:
        raise _Invalid(f"{name}: longer than {max_len} characters")
    if name in _IDENTITY_FIELDS and not _unicode_ok(value):  # (claims are repaired later)
        raise _Invalid(f"{name}: not valid Unicode (lone surrogate)")
    return value


def _repaired(fields: dict[str, tuple[str, str | None]], clamped: list[str]) -> dict[str, str | None]:
    """Free-text claims ({field: (JSON path, value)}) with lone surrogates replaced by U+FFFD,
    their paths noted in ``clamped``."""
    repaired = {}
    for name, (path, value) in fields.items():
        if value is not None and not _unicode_ok(value):
            value = _LONE_SURROGATE.sub("\ufffd", value)
            clamped.append(path)
        repaired[name] = value
    return repaired


def _int(obj: dict, name: str, *, minimum: int | None = None, path: str = "",
         nullable: bool = True) -> int | None:
    value = obj.get(name)
    if value is None:
        if not nullable and name in obj:
            raise _Invalid(f"{path}{name}: null")
        return None
    # bool is an int subclass in Python but not in JSON schema.
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer() and math.isfinite(value):
            value = int(value)
        else:
            raise _Invalid(f"{path}{name}: expected integer, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise _Invalid(f"{path}{name}: below minimum {minimum}")
    return value


def _exact(values: dict[str, tuple[str, int | None]], clamped: list[str]) -> dict[str, int | None]:
    """Integers that only feed the detector's float arithmetic ({field: (JSON path, value)}),
    clamped to what a float holds exactly (noted in ``clamped``): they are client claims
    (max_tokens=1e20 must not hide a request from the detector)."""
    exact = {}
    for name, (path, value) in values.items():
        if value is not None and value > MAX_EXACT_INT:
            value = MAX_EXACT_INT
            clamped.append(path)
        exact[name] = value
    return exact


def _fit(values: dict[str, int | None], clamped: list[str]) -> dict[str, int | None]:
    """Integers brought into their ``events`` column's range (see _FIT_TO_COLUMN)."""
    for path, column, action, (low, high) in _FIT_RANGES:
        value = values[column]
        if value is None or low <= value <= high:
            continue
        values[column] = None if action == "unknown" else min(max(value, low), high)
        clamped.append(path)
    return values


def _num(obj: dict, name: str, clamped: list[str], *, minimum: float | None = None,
         maximum: float | None = None, path: str = "") -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid(f"{path}{name}: expected number, got {type(value).__name__}")
    try:
        value = float(value)
    except OverflowError:  # an integer past the float range
        value = math.inf if value > 0 else -math.inf
    if math.isnan(value):
        raise _Invalid(f"{path}{name}: not a finite number")
    if minimum is not None and value < minimum:
        raise _Invalid(f"{path}{name}: below minimum {minimum}")
    if maximum is not None and value > maximum:
        raise _Invalid(f"{path}{name}: above maximum {maximum}")
    if math.isinf(value):
        # JSON numbers past the float range (1e400) decode to infinity: a valid claim of a
        # huge value, kept as the largest float (NaN/Infinity tokens are not JSON: rejected).
        value = math.copysign(sys.float_info.max, value)
        clamped.append(f"{path}{name}")
    return value


def _obj(obj: dict, name: str) -> dict:
    if name not in obj:
        return {}
    value = obj[name]
    if not isinstance(value, dict):
        raise _Invalid(f"{name}: expected object, got {type(value).__name__}")
    return value


def _reject_constant(token: str):
    # json.loads accepts NaN / Infinity by default; JSON (RFC 8259) does not.
    raise _Invalid(f"non-standard JSON number: {token}")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)  # built once: json.loads(**kw) builds one a call


def _depth(value, limit: int) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, (dict, list)))
    return deepest


def _validate(doc, *, shallow: bool = False) -> RequestEvent:
    if not isinstance(doc, dict):
        raise _Invalid(f"expected a JSON object, got {type(doc).__name__}")
    for name in REQUIRED:
        if name not in doc:
            raise _Invalid(f"missing required field: {name}")
    schema = doc["schema"]
    if schema != SCHEMA:
        raise _Invalid(f"unsupported schema: {str(schema)[:40]!r} (expected {SCHEMA!r})")
    if not shallow and _depth(doc, MAX_DEPTH) > MAX_DEPTH:
        raise _Invalid(f"JSON nested deeper than {MAX_DEPTH} levels")
    ts = _str(doc, "ts", required=True)
    try:
        ts_ms = parse_rfc3339_ms(ts)
    except (ValueError, OverflowError) as exc:
        raise _Invalid(f"ts: {exc}") from None
    if not MIN_TS_MS <= ts_ms < MAX_TS_MS:
        raise _Invalid("ts: outside 2000-01-01 .. 2100-01-01")

    params = _obj(doc, "params")
    usage = _obj(doc, "usage")
    client = _obj(doc, "client")
    account = _obj(doc, "account")
    stream = params.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _Invalid(f"params.stream: expected boolean, got {type(stream).__name__}")
    created = _str(account, "created_at")
    created_ms = None
    if created is not None:
        try:
            created_ms = parse_rfc3339_ms(created)
        except (ValueError, OverflowError) as exc:
            raise _Invalid(f"account.created_at: {exc}") from None
    try:
        country = _str(client, "country", max_len=2)
    except _Invalid as exc:
        raise _Invalid(f"client.{exc}") from None
    identity = {
        "event_id": _str(doc, "event_id", required=True, max_len=MAX_ID_LEN, min_len=1),
        "api_key_id": _str(doc, "api_key_id", required=True, max_len=MAX_ID_LEN, min_len=1),
        "account_id": _str(doc, "account_id", required=True, max_len=MAX_ID_LEN, min_len=1),
        "org_id": _str(doc, "org_id", max_len=MAX_ID_LEN),
    }
    clamped: list[str] = []
    claims = _repaired({
        "model": ("model", _str(doc, "model", required=True, max_len=MAX_ID_LEN, min_len=1)),
        "endpoint": ("endpoint", _str(doc, "endpoint", max_len=256)),
        "conversation_id": ("conversation_id", _str(doc, "conversation_id", max_len=MAX_ID_LEN)),
        "client_ip": ("client.ip", _str(client, "ip")),
        "user_agent": ("client.user_agent", _str(client, "user_agent")),
        "country": ("client.country", country),
        "payment_fingerprint": ("account.payment_fingerprint", _str(account, "payment_fingerprint")),
        "tier": ("account.tier", _str(account, "tier")),
    }, clamped)
    numbers = _fit({
        "input_tokens": _int(usage, "input_tokens", minimum=0, path="usage."),
        "output_tokens": _int(usage, "output_tokens", minimum=0, path="usage."),
        "status": _int(doc, "status"),
        "latency_ms": _int(doc, "latency_ms", minimum=0),
        "asn": _int(client, "asn", path="client."),
    }, clamped)
    counts = _exact({
        "turn_index": ("turn_index", _int(doc, "turn_index", minimum=0, nullable=False) or 0),
        "max_tokens": ("params.max_tokens", _int(params, "max_tokens", minimum=0, path="params.")),
        "n": ("params.n", _int(params, "n", minimum=1, path="params.")),
        "tools": ("params.tools", _int(params, "tools", minimum=0, path="params.")),
    }, clamped)
    return RequestEvent(
        ts_ms=ts_ms,
        prompt=_str(doc, "prompt", required=True),
        system_prompt=_str(doc, "system_prompt"),
        temperature=_num(params, "temperature", clamped, minimum=0, path="params."),
        top_p=_num(params, "top_p", clamped, minimum=0, maximum=1, path="params."),
        stream=stream,
        account_created_ms=created_ms,
        clamped=tuple(clamped),
        **identity, **claims, **numbers, **counts,
    )


# The fast path: msgspec decodes a record straight into typed structs (~5x json.loads plus
# the validator above). It is stricter than the contract's validator (1.0 for an integer,
# 1e400, NaN, a lone surrogate escape, null for an object: msgspec refuses them), so a record
# it refuses, or that any check below refuses, goes through ``_validate``: every bad record
# gets the slow path's reason, and every good one the same RequestEvent
# (tests/unit/models/test_fast_decode.py compares both on generated and fuzzed records).
# Checks msgspec makes in C, as ``_validate`` makes them (a length in characters, a bound).
_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LEN)]
_Count = Annotated[int, msgspec.Meta(ge=0)]


class _Params(msgspec.Struct):
    max_tokens: _Count | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    n: Annotated[int, msgspec.Meta(ge=1)] | None = None
    stream: bool | None = None
    tools: _Count | None = None


class _Usage(msgspec.Struct):
    input_tokens: _Count | None = None
    output_tokens: _Count | None = None


class _Client(msgspec.Struct):
    ip: str | None = None
    user_agent: str | None = None
    asn: int | None = None
    country: Annotated[str, msgspec.Meta(max_length=2)] | None = None


class _Account(msgspec.Struct):
    created_at: str | None = None
    payment_fingerprint: str | None = None
    tier: str | None = None


class _Event(msgspec.Struct):
    schema: str
    event_id: _Id
    ts: str
    api_key_id: _Id
    account_id: _Id
    model: _Id
    prompt: str
    org_id: Annotated[str, msgspec.Meta(max_length=MAX_ID_LEN)] | None = None
    endpoint: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    system_prompt: str | None = None
    conversation_id: Annotated[str, msgspec.Meta(max_length=MAX_ID_LEN)] | None = None
    turn_index: _Count = 0
    status: int | None = None
    latency_ms: _Count | None = None
    params: _Params = msgspec.field(default_factory=_Params)
    usage: _Usage = msgspec.field(default_factory=_Usage)
    client: _Client = msgspec.field(default_factory=_Client)
    account: _Account = msgspec.field(default_factory=_Account)


_FAST_DECODER = msgspec.json.Decoder(_Event)
# account.created_at -> epoch ms: every event of an account carries the same time, and its
# parse cost ~2 us an event. Bounded: cleared when full (it only costs a parse again).
_CREATED_MS: dict[str, int] = {}
_CREATED_MS_MAX = 1 << 14
_EMPTY = ()


def _fast(doc: _Event) -> RequestEvent | None:
    """``_validate`` of a record msgspec decoded, or None where ``_validate`` may disagree
    (it then decides, and names the reason of a bad record)."""
    if doc.schema != SCHEMA or not (_unicode_ok(doc.event_id) and _unicode_ok(doc.api_key_id)
                                    and _unicode_ok(doc.account_id) and (doc.org_id is None or _unicode_ok(doc.org_id))):
        return None
    try:
        ts_ms = parse_rfc3339_ms(doc.ts)
    except (ValueError, OverflowError):
        return None
    if not MIN_TS_MS <= ts_ms < MAX_TS_MS:
        return None
    params, usage, client, account = doc.params, doc.usage, doc.client, doc.account
    created_ms = None
    if account.created_at is not None:
        created_ms = _CREATED_MS.get(account.created_at)
        if created_ms is None:
            try:
                created_ms = parse_rfc3339_ms(account.created_at)
            except (ValueError, OverflowError):
                return None
            if len(_CREATED_MS) >= _CREATED_MS_MAX:
                _CREATED_MS.clear()
            _CREATED_MS[account.created_at] = created_ms
    clamped: list[str] = []
    claims = doc.model, doc.endpoint, doc.conversation_id, client.ip, client.user_agent, client.country, \
        account.payment_fingerprint, account.tier
    if all(value is None or value.isascii() for value in claims):
        model, endpoint, conversation_id, client_ip, user_agent, country, payment_fingerprint, tier = claims
    else:
        repaired = _repaired({
            "model": ("model", doc.model), "endpoint": ("endpoint", doc.endpoint),
            "conversation_id": ("conversation_id", doc.conversation_id), "client_ip": ("client.ip", client.ip),
            "user_agent": ("client.user_agent", client.user_agent), "country": ("client.country", client.country),
            "payment_fingerprint": ("account.payment_fingerprint", account.payment_fingerprint),
            "tier": ("account.tier", account.tier)}, clamped)
        model, endpoint, conversation_id, client_ip, user_agent, country, payment_fingerprint, tier = \
            repaired.values()
    numbers = _fit({"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                    "status": doc.status, "latency_ms": doc.latency_ms, "asn": client.asn}, clamped)
    counts = _exact({"turn_index": ("turn_index", doc.turn_index),
                     "max_tokens": ("params.max_tokens", params.max_tokens), "n": ("params.n", params.n),
                     "tools": ("params.tools", params.tools)}, clamped)
    temperature, top_p = params.temperature, params.top_p  # (msgspec refuses a number past the float range)
    return RequestEvent(
        event_id=doc.event_id, ts_ms=ts_ms, api_key_id=doc.api_key_id, account_id=doc.account_id, model=model,
        prompt=doc.prompt, org_id=doc.org_id, endpoint=endpoint, system_prompt=doc.system_prompt,
        conversation_id=conversation_id, temperature=None if temperature is None else float(temperature),
        top_p=None if top_p is None else float(top_p), stream=params.stream, client_ip=client_ip,
        user_agent=user_agent, country=country, account_created_ms=created_ms,
        payment_fingerprint=payment_fingerprint, tier=tier, clamped=tuple(clamped) if clamped else _EMPTY,
        **numbers, **counts)


def parse_event(raw: bytes | str, *, fast: bool = True) -> RequestEvent | BadRecord:
    """Decode and validate one record. Never raises: bad input becomes a :class:`BadRecord`.
    ``fast=False``: the validator alone, without msgspec's fast path (the same results;
    for the test and the benchmark that show it)."""
    if isinstance(raw, str):
        data = raw.encode("utf-8", "surrogatepass")
    else:
        data = raw if type(raw) is bytes else bytes(raw)
    if len(data) > MAX_EVENT_BYTES:
        return BadRecord(f"record too large: {len(data)} bytes, over the {MAX_EVENT_BYTES}-byte limit", data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return BadRecord("not valid UTF-8", data)
    # A document with at most MAX_DEPTH brackets cannot nest deeper: no walk (and msgspec,
    # which skips unknown fields unread, may decode it).
    shallow = data.count(b"{") + data.count(b"[") <= MAX_DEPTH
    if shallow and fast:
        try:
            event = _fast(_FAST_DECODER.decode(data))
        except Exception:  # noqa: BLE001 - whatever msgspec refuses, the validator judges
            event = None
        if event is not None:
            return event
    try:
        doc = _DECODER.decode(text)
    except _Invalid as exc:
        return BadRecord(str(exc), data)
    except RecursionError:
        return BadRecord(f"JSON nested deeper than {MAX_DEPTH} levels", data)
    except ValueError as exc:
        return BadRecord(f"not JSON: {exc}", data)
    try:
        return _validate(doc, shallow=shallow)
    except _Invalid as exc:
        return BadRecord(str(exc), data)
    except (RecursionError, ValueError, TypeError, OverflowError) as exc:  # defensive: never raise
        return BadRecord(f"invalid record: {type(exc).__name__}: {exc}", data)


class _KeyOnly(msgspec.Struct):
    api_key_id: str


_KEY_DECODER = msgspec.json.Decoder(_KeyOnly)


def routing_key(raw: bytes) -> str | None:
    """The ``api_key_id`` that :func:`parse_event` gives these bytes if it gives an event, in
    ~1 us (the other fields skipped unread); None when no event can come of them (which key
    a bad record is routed by does not matter: it touches no key state). For spreading
    records over processes by key (``distillguard replay --jobs``).

    The same value by construction: both read the top-level field, and where a document
    names it twice both take the last (msgspec and ``json`` alike); where msgspec refuses
    the document (a lone surrogate's escape), ``json`` decides, as in ``parse_event``.

    >>> routing_key(b'{"api_key_id":"k1","prompt":"x","params":{"api_key_id":"k2"}}'), routing_key(b'{oops')
    ('k1', None)
    """
    if len(raw) > MAX_EVENT_BYTES:
        return None
    try:
        return _KEY_DECODER.decode(raw).api_key_id
    except msgspec.DecodeError:
        pass
    try:
        doc = _DECODER.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError, _Invalid):
        return None
    key = doc.get("api_key_id") if isinstance(doc, dict) else None
    return key if isinstance(key, str) else None
