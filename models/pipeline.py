"""The per-event step shared by the Faust workers and ``distillguard replay``.

``KeyPipeline.step`` takes the key's serialized state (or ``None`` for a new key), one
validated event and its input offset, and returns the new serialized state, the feature
row for ClickHouse (never the prompt text) and, when the key's incident opens or
escalates, one alert v1 dict. It is deterministic and does no I/O, so replaying a file and
streaming it through Kafka give the same alerts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from .events import RequestEvent
from .features import EventFeatures, featurize


@dataclass(slots=True)
class StepResult:
    state: bytes
    row: dict | None
    alert: dict | None
    duplicate: bool = False
    features: "EventFeatures | None" = None  # for the cross-key (cluster) detector


# The feature row written to ClickHouse for every processed event (sinks.clickhouse owns the
# table; a new column here needs a migration there). No prompt text, by construction.
ROW_COLUMNS: tuple[str, ...] = (
    "event_id",        # str
    "ts_ms",           # int, event time, epoch ms
    "api_key_id",      # str
    "account_id",      # str
    "org_id",          # str ('' when unknown)
    "model",           # str
    "endpoint",        # str ('' when unknown)
    "asn",             # int (0 when unknown)
    "country",         # str ('' when unknown)
    "prompt_chars",    # int
    "input_tokens",    # int (0 when unknown)
    "output_tokens",   # int (0 when unknown)
    "status",          # int (0 when unknown)
    "latency_ms",      # int (0 when unknown)
    "score",           # float, the key's detector score after this event
    "extraction_style",  # float in [0, 1], how much this prompt reads like extraction
    "topic_bucket",    # int in [0, 255], coarse topic of the prompt sketch
    "template_hash",   # int, uint64 fingerprint of the masked prompt template
    "alerting",        # int 0/1, key has an open incident
)


# ---------------------------------------------------------------------------------------
# The per-key detector. State is one fixed-layout little-endian byte string per key
# (version byte + float64 scalars + uint64 rings + uint16 topic histogram), never pickle.
# ---------------------------------------------------------------------------------------
STATE_VERSION = 2
_SCALARS = ("n", "last_offset", "last_ts", "first_ts", "style_ew", "followup_ew", "novelty_ew", "template_ew",
            "gap_mean", "gap_var", "temp0_ew", "bigout_ew", "score", "incident", "alerting", "severity",
            "quiet", "yield_ew", "yield_n")
_IDX = {name: i for i, name in enumerate(_SCALARS)}
_RING = 8
_YIELD_TOKENS = 500.0  # output tokens that count as a full harvest for one request
_BINS = 64
_LAYOUT = np.dtype([("scalars", "<f8", len(_SCALARS)), ("ids", "<u4", _RING), ("sketch", "<u8", _RING),
                    ("templates", "<u4", _RING), ("hist", "<u2", _BINS)])
STATE_BYTES = 1 + _LAYOUT.itemsize
SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class DetectorConfig:
    """Thresholds and per-entity overrides of the per-key detector (pure data, no env).

    ``thresholds`` are score levels for info / warning / critical; an incident closes
    after ``close_after`` consecutive events below ``close_ratio`` x the info threshold.
    """

    thresholds: tuple[float, float, float] = (0.5, 0.65, 0.8)
    min_events: int = 50
    alpha: float = 0.03
    close_ratio: float = 0.6
    close_after: int = 200
    allow_keys: frozenset[str] = frozenset()
    allow_accounts: frozenset[str] = frozenset()
    key_threshold_scale: dict[str, float] = field(default_factory=dict)
    account_threshold_scale: dict[str, float] = field(default_factory=dict)


def _new_state() -> np.ndarray:
    state = np.zeros((), dtype=_LAYOUT)
    state["scalars"][_IDX["last_offset"]] = -1.0
    return state


def decode_state(data: bytes | None) -> np.ndarray:
    if not data:
        return _new_state()
    if data[0] != STATE_VERSION or len(data) != STATE_BYTES:
        # An unknown layout (older/newer worker): start the key afresh rather than misread it.
        return _new_state()
    return np.frombuffer(data, dtype=_LAYOUT, offset=1)[0].copy()


def encode_state(state: np.ndarray) -> bytes:
    return bytes([STATE_VERSION]) + state.tobytes()


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _popcount(x: int) -> int:
    return bin(x).count("1")


class KeyPipeline:
    """Featurize, dedup, learn and score one key's event; open/escalate/close its incident."""

    detector = "distillguard.key/0.1"

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()

    def describe_state(self, data: bytes) -> dict:
        s = decode_state(data)["scalars"]
        return {"events": int(s[_IDX["n"]]), "score": round(float(s[_IDX["score"]]), 4),
                "alerting": bool(s[_IDX["alerting"]]), "incident": int(s[_IDX["incident"]]),
                "last_offset": int(s[_IDX["last_offset"]]), "bytes": len(data)}

    def step(self, state: bytes | None, event: RequestEvent, offset: int | None = None) -> StepResult:
        st = decode_state(state)
        s = st["scalars"]
        if offset is not None and offset <= s[_IDX["last_offset"]]:
            return StepResult(state or encode_state(st), None, None, duplicate=True)
        f = featurize(event)
        if f.event_hash in st["ids"] and s[_IDX["n"]] > 0:
            return StepResult(state or encode_state(st), None, None, duplicate=True)
        score = self._learn(st, f)
        alert = self._incident(st, event, score)
        if offset is not None:
            s[_IDX["last_offset"]] = offset
        row = {
            "event_id": event.event_id, "ts_ms": event.ts_ms, "api_key_id": event.api_key_id,
            "account_id": event.account_id, "org_id": event.org_id or "", "model": event.model,
            "endpoint": event.endpoint or "", "asn": max(0, event.asn or 0), "country": event.country or "",
            "prompt_chars": f.prompt_chars, "input_tokens": event.input_tokens or 0,
            "output_tokens": event.output_tokens or 0, "status": max(0, min(65535, event.status or 0)),
            "latency_ms": event.latency_ms or 0, "score": float(score), "extraction_style": f.style,
            "topic_bucket": f.topic_bucket, "template_hash": f.template_hash,
            "alerting": int(s[_IDX["alerting"]]),
        }
        return StepResult(encode_state(st), row, alert, features=f)

    # -- learning --------------------------------------------------------------------------
    def _learn(self, st: np.ndarray, f: EventFeatures) -> float:
        s, a = st["scalars"], self.config.alpha
        n = s[_IDX["n"]]
        # Score before learn: novelty against the key's recent sketches and templates.
        recent = [int(x) for x in st["sketch"] if x]
        novelty = min((_popcount(f.simhash ^ x) for x in recent), default=32) / 32.0
        template_seen = float((f.template_hash & 0xFFFFFFFF) in st["templates"])
        gap = max(1.0, (f.ts_ms - s[_IDX["last_ts"]]) / 1000.0) if n else 0.0

        def ew(name: str, value: float) -> None:
            s[_IDX[name]] = value if n == 0 else (1 - a) * s[_IDX[name]] + a * value

        ew("style_ew", f.style)
        ew("followup_ew", float(f.followup))
        ew("novelty_ew", min(1.0, novelty))
        ew("template_ew", template_seen)
        ew("temp0_ew", float(f.temperature == 0.0))
        ew("bigout_ew", float(f.max_tokens >= 16000))
        if f.output_tokens >= 0:
            # Output yield: only over events whose usage was reported (first one seeds it).
            y = min(1.0, f.output_tokens / _YIELD_TOKENS)
            s[_IDX["yield_ew"]] = y if s[_IDX["yield_n"]] == 0 else (1 - a) * s[_IDX["yield_ew"]] + a * y
            s[_IDX["yield_n"]] += 1
        if n:
            lg = math.log(gap)
            delta = lg - s[_IDX["gap_mean"]]
            s[_IDX["gap_mean"]] += a * delta
            s[_IDX["gap_var"]] = (1 - a) * (s[_IDX["gap_var"]] + a * delta * delta)
        else:
            s[_IDX["first_ts"]] = f.ts_ms
        slot = int(n) % _RING
        st["ids"][slot] = f.event_hash
        st["sketch"][slot] = f.simhash
        st["templates"][slot] = f.template_hash & 0xFFFFFFFF
        bin_ = f.topic_bucket * _BINS // 256
        st["hist"][bin_] = min(65535, int(st["hist"][bin_]) + 1)
        s[_IDX["n"]] = n + 1
        s[_IDX["last_ts"]] = f.ts_ms
        score = self._score(st)
        s[_IDX["score"]] = score
        return score

    def _score(self, st: np.ndarray) -> float:
        s = st["scalars"]
        style = s[_IDX["style_ew"]]
        breadth = s[_IDX["novelty_ew"]] * (1.0 - s[_IDX["template_ew"]])
        conversational = s[_IDX["followup_ew"]]
        # Extraction-style prompts are necessary; follow-up conversations discount them;
        # breadth (novel content, not one repeated frame) and a very large output budget add
        # to them. Temperature 0 is not evidence: every evaluation harness sends it.
        raw = style * (1.0 - 0.9 * conversational)
        raw *= 0.75 + 0.25 * breadth + 0.075 * s[_IDX["bigout_ew"]]
        raw *= self._harvest_factor(s)
        return float(max(0.0, min(1.0, raw)))

    @staticmethod
    def _harvest_factor(s: np.ndarray) -> float:
        """Distillation collects the model's *outputs*: a key whose answers are short (a
        final-answer eval, a classifier) harvests little teacher signal however its prompts
        read. Full weight from a mean yield of 0.5 (about 250+ output tokens); unknown when
        usage is not reported, then neutral."""
        if s[_IDX["yield_n"]] < 5:
            return 1.0
        return 0.3 + 0.7 * min(1.0, s[_IDX["yield_ew"]] / 0.5)

    def _reasons(self, st: np.ndarray) -> list[dict]:
        s = st["scalars"]
        hist = st["hist"]
        reasons = [
            {"signal": "extraction_style_share", "value": round(float(s[_IDX["style_ew"]]), 3), "baseline": 0.05,
             "weight": 1.6},
            {"signal": "topic_novelty", "value": round(float(s[_IDX["novelty_ew"]]), 3), "baseline": 0.5,
             "weight": 0.6},
            {"signal": "template_repetition", "value": round(float(s[_IDX["template_ew"]]), 3), "baseline": 0.2,
             "weight": -0.6},
            {"signal": "follow_up_share", "value": round(float(s[_IDX["followup_ew"]]), 3), "baseline": 0.4,
             "weight": -0.8},
            {"signal": "output_yield", "value": round(float(s[_IDX["yield_ew"]]), 3), "baseline": 0.5,
             "weight": 0.7},
            {"signal": "topic_buckets_seen", "value": int((hist > 0).sum()), "baseline": None, "weight": None},
        ]
        return sorted(reasons, key=lambda r: -abs((r["weight"] or 0) * (r["value"] or 0)))

    # -- incidents ---------------------------------------------------------------------------
    def _thresholds(self, event: RequestEvent) -> tuple[float, ...]:
        scale = self.config.key_threshold_scale.get(event.api_key_id,
                                                    self.config.account_threshold_scale.get(event.account_id, 1.0))
        return tuple(t * scale for t in self.config.thresholds)

    def _incident(self, st: np.ndarray, event: RequestEvent, score: float) -> dict | None:
        s, cfg = st["scalars"], self.config
        if event.api_key_id in cfg.allow_keys or event.account_id in cfg.allow_accounts:
            return None
        thresholds = self._thresholds(event)
        level = sum(score >= t for t in thresholds)  # 0 = below info
        if s[_IDX["alerting"]]:
            if score < cfg.close_ratio * thresholds[0]:
                s[_IDX["quiet"]] += 1
                if s[_IDX["quiet"]] >= cfg.close_after:
                    s[_IDX["alerting"]] = 0
                    s[_IDX["severity"]] = 0
                return None
            s[_IDX["quiet"]] = 0
            if level <= s[_IDX["severity"]]:
                return None
        elif level == 0 or s[_IDX["n"]] < cfg.min_events:
            return None
        else:
            s[_IDX["incident"]] += 1
            s[_IDX["alerting"]] = 1
            s[_IDX["quiet"]] = 0
        s[_IDX["severity"]] = level
        return {
            "schema": "distill.alert.v1",
            "alert_id": f"key:{event.api_key_id}:{int(s[_IDX['incident']])}",
            "ts": _iso(event.ts_ms),
            "entity_type": "key",
            "entity_id": event.api_key_id,
            "api_key_ids": [event.api_key_id],
            "score": round(score, 4),
            "severity": SEVERITIES[level - 1],
            "reasons": self._reasons(st),
            "events_seen": int(s[_IDX["n"]]),
            "detector": self.detector,
        }
