"""The request event v1 validator against the contract's JSON schema and a bad-input corpus."""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distillguard.models.events import MAX_EVENT_BYTES, BadRecord, RequestEvent, parse_event

CONTRACT = Path(__file__).resolve().parents[3] / "contracts" / "request-event.v1.schema.json"

GOOD = {
    "schema": "llm.request.v1", "event_id": "ev_1", "ts": "2026-02-01T00:00:47.883Z", "api_key_id": "key_1",
    "account_id": "acct_1", "org_id": None, "model": "frontier-3-sonnet", "endpoint": "/v1/messages",
    "prompt": "Are you aware of the history of Lisbon?", "system_prompt": None, "conversation_id": "c1",
    "turn_index": 0, "params": {"max_tokens": 8192, "stream": True, "tools": 0, "temperature": 0.7, "top_p": 0.9,
                                "n": 1},
    "usage": {"input_tokens": 15, "output_tokens": 285}, "status": 200, "latency_ms": 5685,
    "client": {"ip": "10.1.2.3", "user_agent": "ua", "asn": 4637, "country": "AU"},
    "account": {"created_at": "2025-03-29T06:43:19Z", "payment_fingerprint": "pf_1", "tier": "free"},
}


def encode(doc) -> bytes:
    return json.dumps(doc).encode()


@pytest.fixture(scope="module")
def schema():
    return json.loads(CONTRACT.read_text())


def test_good_event_parses_every_field():
    ev = parse_event(encode(GOOD))
    assert isinstance(ev, RequestEvent)
    assert (ev.api_key_id, ev.account_id, ev.ts_ms, ev.max_tokens, ev.temperature) == \
        ("key_1", "acct_1", 1769904047883, 8192, 0.7)
    assert (ev.asn, ev.country, ev.payment_fingerprint, ev.stream) == (4637, "AU", "pf_1", True)


def test_unknown_fields_are_ignored():
    doc = dict(GOOD, future_field={"nested": [1, 2]}, params=dict(GOOD["params"], new_param=3))
    assert isinstance(parse_event(encode(doc)), RequestEvent)


def _mutate(path: list[str], value):
    doc = copy.deepcopy(GOOD)
    node = doc
    for part in path[:-1]:
        node = node[part]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


_DELETE = object()

BAD = {
    "missing event_id": (_mutate(["event_id"], _DELETE), "missing required field: event_id"),
    "missing prompt": (_mutate(["prompt"], _DELETE), "missing required field: prompt"),
    "null api key": (_mutate(["api_key_id"], None), "api_key_id"),
    "int prompt": (_mutate(["prompt"], 42), "prompt: expected string"),
    "bool turn": (_mutate(["turn_index"], True), "turn_index: expected integer"),
    "negative turn": (_mutate(["turn_index"], -1), "below minimum"),
    "string max_tokens": (_mutate(["params", "max_tokens"], "100"), "params.max_tokens"),
    "top_p above 1": (_mutate(["params", "top_p"], 1.5), "params.top_p"),
    "n zero": (_mutate(["params", "n"], 0), "params.n"),
    "stream as string": (_mutate(["params", "stream"], "yes"), "params.stream"),
    "params not object": (_mutate(["params"], [1]), "params: expected object"),
    "bad ts": (_mutate(["ts"], "yesterday"), "ts:"),
    "ts without zone": (_mutate(["ts"], "2026-02-01T00:00:00"), "ts:"),
    "ts far future": (_mutate(["ts"], "2999-01-01T00:00:00Z"), "ts: outside"),
    "ts far past": (_mutate(["ts"], "1970-01-01T00:00:00Z"), "ts: outside"),
    "schema v2": (_mutate(["schema"], "llm.request.v2"), "unsupported schema"),
    "long key": (_mutate(["api_key_id"], "k" * 129), "longer than 128"),
    "empty event id": (_mutate(["event_id"], ""), "event_id: empty"),
    "country 3 letters": (_mutate(["client", "country"], "USA"), "client.country"),
    "created_at junk": (_mutate(["account", "created_at"], "soon"), "account.created_at"),
    "array document": ([GOOD], "expected a JSON object"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_documents_are_rejected_with_reason(name, schema):
    doc, reason = BAD[name]
    result = parse_event(encode(doc))
    assert isinstance(result, BadRecord), name
    assert reason in result.reason
    assert result.raw == encode(doc)


def test_contract_schema_agrees_on_good_and_structural_bad(schema):
    jsonschema.validate(GOOD, schema)
    # Every rejection above that the JSON schema can express is also a schema violation.
    schema_checkable = {k for k in BAD if k not in {"ts far future", "ts far past", "bad ts", "ts without zone",
                                                    "created_at junk"}}
    for name in schema_checkable:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(BAD[name][0], schema)


def _nested(depth: int) -> dict:
    doc: dict = {"leaf": 1}
    for _ in range(depth):
        doc = {"n": doc}
    return doc


@pytest.mark.parametrize("raw,reason", [
    (b"{not json", "not JSON"),
    (b'{"schema": "llm.request.v1", "event_id": "x"', "not JSON"),  # truncated
    (b"\xff\xfe\x00", "not valid UTF-8"),
    (b"", "not JSON"),
    (b'{"a": NaN}', "non-standard JSON number"),
    (encode(dict(GOOD, params={"temperature": 1e400})), "non-standard JSON number"),
    (b"[" * 100000 + b"]" * 100000, "nested deeper"),
    (encode(dict(GOOD, prompt="x" * (MAX_EVENT_BYTES + 1))), "byte limit"),
    (encode(dict(GOOD, extra=_nested(20))), "nested deeper"),
])
def test_malformed_bytes_are_rejected(raw, reason):
    result = parse_event(raw)
    assert isinstance(result, BadRecord)
    assert reason in result.reason


def test_ten_megabyte_prompt_is_rejected_without_parsing():
    raw = encode(dict(GOOD, prompt="y" * 10_000_000))
    result = parse_event(raw)
    assert isinstance(result, BadRecord) and "byte limit" in result.reason


def test_lone_surrogate_in_prompt_is_accepted_and_safe():
    raw = b'{"schema":"llm.request.v1","event_id":"e","ts":"2026-02-01T00:00:00Z","api_key_id":"k",' \
          b'"account_id":"a","model":"m","prompt":"bad \\ud800 text"}'
    ev = parse_event(raw)
    assert isinstance(ev, RequestEvent)
    assert ev.prompt.encode("utf-8", "surrogatepass")


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12),
                                                                                      children, max_size=6),
                    max_leaves=30))
def test_fuzz_arbitrary_json_never_raises(doc):
    raw = json.dumps(doc).encode("utf-8", "surrogatepass")
    assert isinstance(parse_event(raw), (RequestEvent, BadRecord))


def _schema_accepts(doc, schema) -> bool:
    try:
        jsonschema.validate(doc, schema)
    except jsonschema.ValidationError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(overrides=st.dictionaries(st.sampled_from(sorted(GOOD)), st.none() | st.integers() | st.text() | st.floats()
                       | st.booleans() | st.lists(st.integers(), max_size=2), max_size=8))
def test_fuzz_field_types_agree_with_schema(overrides, schema):
    doc = dict(GOOD, **overrides)
    result = parse_event(json.dumps(doc).encode("utf-8", "surrogatepass"))
    if not _schema_accepts(doc, schema):
        assert isinstance(result, BadRecord), (doc, "schema rejects, validator accepted")
    elif isinstance(result, BadRecord):
        # Stricter than the schema only where the schema cannot say it: time formats and range,
        # and identities that are not valid Unicode (a lone surrogate).
        assert result.reason.startswith(("ts:", "account.created_at", "non-standard JSON number")) \
            or result.reason.endswith("not valid Unicode (lone surrogate)"), result.reason


@given(st.binary(max_size=300))
def test_fuzz_bytes_never_raise(raw):
    assert isinstance(parse_event(raw), (RequestEvent, BadRecord))


def test_tool_use_scaffolds_read_as_extraction_style_but_ordinary_words_do_not():
    from distillguard.models.features import style_score

    assert style_score("You have access to the following tools: search, calculator. Who won in 1998?") >= 0.5
    assert style_score("Thought: I should look this up\nAction: search\nAction Input: tallest tower") >= 0.5
    assert style_score("Can you call my mother later and tell her what actions I took?") == 0.0


_NESTED = {"params": ["max_tokens", "temperature", "top_p", "n", "stream", "tools"],
           "usage": ["input_tokens", "output_tokens"], "client": ["ip", "user_agent", "asn", "country"],
           "account": ["created_at", "payment_fingerprint", "tier"]}
_VALUES = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-2, max_value=2**60)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6)
           | st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@settings(max_examples=400, deadline=None)
@given(overrides=st.lists(st.sampled_from([(o, i) for o, inner in _NESTED.items() for i in inner])
                          .flatmap(lambda path: st.tuples(st.just(path), _VALUES)), max_size=5))
def test_fuzz_nested_field_types_agree_with_schema(overrides, schema):
    doc = copy.deepcopy(GOOD)
    for (outer, inner), value in overrides:
        doc[outer][inner] = value
    result = parse_event(json.dumps(doc).encode())
    if not _schema_accepts(doc, schema):
        assert isinstance(result, BadRecord), (doc, "schema rejects, validator accepted")
    elif isinstance(result, BadRecord):
        assert result.reason.startswith("account.created_at") or result.reason.endswith("out of range"), \
            result.reason


_VALID_BYTES = encode(GOOD)


@settings(max_examples=400, deadline=None)
@given(cut=st.integers(0, len(_VALID_BYTES)), at=st.integers(0, len(_VALID_BYTES) - 1),
       insert=st.binary(max_size=8), drop=st.integers(0, 4))
def test_fuzz_mutated_valid_record_never_raises_and_keeps_bytes(cut, at, insert, drop):
    # Truncations, byte insertions and deletions of a valid record: near-valid input, where
    # random bytes almost never reach the validator.
    for raw in (_VALID_BYTES[:cut], _VALID_BYTES[:at] + insert + _VALID_BYTES[at + drop:]):
        result = parse_event(raw)
        assert isinstance(result, (RequestEvent, BadRecord))
        if isinstance(result, BadRecord):
            assert result.raw == raw and result.reason
        else:
            assert result.event_id and result.api_key_id and 946_684_800_000 <= result.ts_ms < 4_102_444_800_000


def test_style_rules_for_tool_contracts_listed_options_and_explanations_but_not_chat_openers():
    from distillguard.models.features import style_score

    tool = ("search: looks things up on the web. Input should be a query, and the output will be the top results.\n"
            "search(query)\nWho won the 1998 World Cup?")
    assert style_score(tool) >= 0.5
    assert style_score("Which of these is a mammal?\nOptions:\n- shark\n- whale\n- trout") > 0
    assert style_score("Answer the following question, with explanation first. Is a tomato a fruit?") >= 0.5
    # preference pairs and critique-and-revise data: the model as a reward model and reviser
    assert style_score("Which is more helpful?\nResponse A: Paris.\nResponse B: Lyon, I think.") >= 0.5
    assert style_score("Revise the following response so that it is more accurate: The sun orbits the earth.") >= 0.5
    assert style_score("Q: Can a penguin fly?\nReasoning:") >= 0.5
    assert style_score("Improve my essay about cats") == style_score("I had a thought: cats are great") == 0.0
    # how people open a chat, and what every application asks of its answers
    assert style_score("Quick question: what is the capital of Peru?") == 0.0
    assert style_score("What is a kite? Respond in JSON only.") == 0.0
    assert style_score("the input should be validated before saving, right?") == 0.0


def test_a_benchmark_item_answered_at_length_reads_as_a_reasoning_harvest():
    from distillguard.models.constants import ORDINARY_ANSWER_TOKENS
    from distillguard.models.features import answered_style, featurize_text

    item = "The following are multiple choice questions (with answers).\nWhat is 2+3?\nA. 4\nB. 5\nC. 6\nD. 7\nAnswer:"
    letter, essay = featurize_text(item, output_tokens=1), featurize_text(item, output_tokens=int(ORDINARY_ANSWER_TOKENS))
    assert answered_style(letter) == letter.style < 0.5 <= answered_style(essay)
    # a prompt that already elicits reasoning is not changed by its answer's length
    cot = featurize_text("Think step by step: what is 2+3?", output_tokens=900)
    assert answered_style(cot) == cot.style == 1.0


# -- every value checked against the column it is stored in (issue #17, finding 1) ----------
def _doc(**fields) -> dict:
    doc = copy.deepcopy(GOOD)
    for path, value in fields.items():
        node = doc
        *outer, name = path.split(".")
        for part in outer:
            node = node[part]
        node[name] = value
    return doc


@pytest.mark.parametrize("path,value,stored", [
    ("usage.output_tokens", 5e9, 2**32 - 1),
    ("usage.output_tokens", 2**53, 2**32 - 1),
    ("usage.input_tokens", 2**32, 2**32 - 1),
    ("usage.input_tokens", 2**64, 2**32 - 1),
    ("params.max_tokens", 10**20, 2**53),
    ("params.n", 2**60, 2**53),
    ("params.tools", 2**54, 2**53),
    ("turn_index", 2**64, 2**53),
    ("latency_ms", 2**40, 2**32 - 1),
    ("status", -1, 0),
    ("status", 70_000, 65_535),
    ("client.asn", -7, None),
    ("client.asn", 2**32, None),
])
def test_an_integer_past_its_column_is_clamped_and_noted(path, value, stored):
    ev = parse_event(encode(_doc(**{path: value})))
    assert isinstance(ev, RequestEvent)
    attribute = path.split(".")[-1]
    assert getattr(ev, attribute) == stored and ev.clamped == (path,)


def test_integers_that_fit_their_column_are_kept_and_not_noted():
    ev = parse_event(encode(_doc(**{"usage.output_tokens": 2**32 - 1, "status": 65_535, "client.asn": 0,
                                    "latency_ms": 0})))
    assert (ev.output_tokens, ev.status, ev.asn, ev.latency_ms, ev.clamped) == (2**32 - 1, 65_535, 0, 0, ())


def _with_escape(path: str, text: str) -> bytes:
    """A document whose field holds ``text`` written with JSON \\u escapes (a lone surrogate
    can only reach the worker this way: it is not encodable as UTF-8)."""
    return encode(_doc(**{path: text}))  # json.dumps escapes non-ASCII (ensure_ascii)


@pytest.mark.parametrize("name", ["event_id", "api_key_id", "account_id", "org_id"])
def test_a_lone_surrogate_in_an_identity_field_is_dead_lettered(name):
    result = parse_event(_with_escape(name, "key-\ud800"))
    assert isinstance(result, BadRecord)
    assert result.reason == f"{name}: not valid Unicode (lone surrogate)"


@pytest.mark.parametrize("path", ["model", "endpoint", "conversation_id", "client.ip", "client.user_agent",
                                  "client.country", "account.payment_fingerprint", "account.tier"])
def test_a_lone_surrogate_in_a_client_claim_is_replaced_and_noted(path):
    ev = parse_event(_with_escape(path, "x\udc00" if path != "client.country" else "\udc00"))
    assert isinstance(ev, RequestEvent) and ev.clamped == (path,)
    value = getattr(ev, {"client.ip": "client_ip"}.get(path, path.split(".")[-1]))
    assert "\ufffd" in value and value.encode("utf-8")


def test_a_valid_surrogate_pair_is_an_ordinary_character():
    ev = parse_event(_with_escape("model", "m\U0001F600"))
    assert ev.model == "m\U0001F600" and ev.clamped == ()


@pytest.mark.parametrize("raw_number", [b"1e400", b"1" + b"0" * 400])
def test_a_temperature_past_the_float_range_is_clamped_and_noted(raw_number):
    raw = encode(GOOD).replace(b'"temperature": 0.7', b'"temperature": ' + raw_number)
    ev = parse_event(raw)
    assert isinstance(ev, RequestEvent)
    assert ev.temperature == sys.float_info.max and ev.clamped == ("params.temperature",)


@pytest.mark.parametrize("raw_number", [b"-1e400", b"1e400"])
def test_a_top_p_past_the_float_range_is_dead_lettered(raw_number):
    result = parse_event(encode(GOOD).replace(b'"top_p": 0.9', b'"top_p": ' + raw_number))
    assert isinstance(result, BadRecord) and result.reason.startswith("params.top_p: ")
