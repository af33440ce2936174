"""``distillguard replay --jobs N`` (``replay_shards``): the keys stepped in N processes, the
cross-key detectors in one, and the output of one process, byte for byte."""
from __future__ import annotations

import dataclasses
import json
import os

import pytest

from distillguard.devtools.demo_traffic import bad_records, demo_events
from distillguard.models.events import RequestEvent, parse_event, routing_key
from distillguard.models.pipeline import _POPULATION_BASELINES, _POPULATION_SIGNALS, KeyPipeline
from distillguard.models.population import PopulationProfile
from distillguard.models.step import Record, RequestProcessor
from distillguard.replay import run_replay
from distillguard.replay_shards import ReplayWorkerError, ShardedStep
from tests.data.bad_inputs import CORPUS, enc, good

LATENESS_MS = 600_000


def _pipeline() -> KeyPipeline:
    """The default detector, its population reporting medians from 3 samples (not 100), so
    that this small stream's alerts state learned baselines, not the priors."""
    pipeline = KeyPipeline()
    pipeline.population = PopulationProfile(_POPULATION_SIGNALS, min_samples=3)
    return pipeline


def _lines() -> list[bytes]:
    """Benign users, six apps (busy keys: the population's samples), a sweep, a 20-key hydra;
    bad records, re-sent events and events past the allowed lateness among them."""
    events = demo_events(seed=11, users=60, campaign_events=500, hours=4.0, hydra_keys=20)
    app = [e for e in events if e["api_key_id"] == "demo_app_support"]
    for copy in range(5):
        events += [dict(e, api_key_id=f"app_{copy}", event_id=f"{e['event_id']}_{copy}") for e in app]
    events.sort(key=lambda e: e["ts"])
    lines = [json.dumps(e, separators=(",", ":")).encode() for e in events]
    out = []
    for i, line in enumerate(lines):
        out.append(line)
        if i % 700 == 5:
            out.extend(bad_records())
        if i % 300 == 7:
            out.append(lines[i - 3])  # a re-sent event: a duplicate of its key
        if i % 500 == 400:  # an event two hours before its key's last one: late
            late = json.loads(line)
            late.update(event_id=f"late_{i}", ts=events[i - 390]["ts"])
            out.append(json.dumps(late).encode())
    return out


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    path = tmp_path_factory.mktemp("shards") / "events.jsonl"
    path.write_bytes(b"\n".join(_lines()) + b"\n")
    return path


def _replay(stream, out, jobs: int):
    out.mkdir()
    summary = run_replay(stream, out / "alerts.jsonl", dlq_path=out / "dlq.jsonl", progress=False,
                         pipeline=_pipeline(), allowed_lateness_ms=LATENESS_MS,
                         exculpated_path=out / "exculpated.jsonl", jobs=jobs)
    return summary, {name: (out / name).read_bytes() for name in ("alerts.jsonl", "dlq.jsonl", "exculpated.jsonl")}


def test_any_number_of_processes_writes_what_one_writes(stream, tmp_path):
    one, files = _replay(stream, tmp_path / "one", 1)
    alerts = [json.loads(line) for line in files["alerts.jsonl"].splitlines()]
    # the stream exercises every path: key and cluster alerts, learned baselines, dead
    # letters, duplicates, late events
    assert {a["entity_type"] for a in alerts} >= {"key", "cluster"}
    baselines = {(r["signal"], r["baseline"]) for a in alerts for r in a["reasons"] if r["signal"] in _POPULATION_BASELINES}
    priors = {(signal, prior) for signal, (_, prior) in _POPULATION_BASELINES.items()}
    assert baselines - priors, "no alert states a learned baseline: the test would not see one go wrong"
    assert one.bad_records >= 9 and one.duplicates > 0 and one.late > 0 and files["dlq.jsonl"]
    for jobs in (2, 3):
        summary, theirs = _replay(stream, tmp_path / f"jobs{jobs}", jobs)
        assert theirs == files, f"--jobs {jobs} wrote other alerts, dead letters or exculpated detections"
        same = ("events", "bad_records", "duplicates", "late", "alerts", "exculpated", "keys",
                "state_bytes_per_key", "link_records")
        assert [getattr(summary, f) for f in same] == [getattr(one, f) for f in same]


def test_each_batch_comes_back_as_run_makes_it(stream):
    """``ShardedStep`` against ``RequestProcessor.run`` batch by batch: dead letters, rows (what
    a backfill stores), alerts and link records, in the same order."""
    lines = stream.read_bytes().splitlines()
    batches = [[Record(line, offset=i + 1) for i, line in enumerate(lines[at:at + 997], at)]
               for at in range(0, len(lines), 997)]
    one = RequestProcessor(_pipeline(), source_topic="t", allowed_lateness_ms=LATENESS_MS, clusters=None)
    states: dict = {}
    expected = []
    for batch in batches:
        expected.append(one.run(batch, states))
        states.update(expected[-1].states)
    sharded = ShardedStep(2, _pipeline(), source_topic="t", allowed_lateness_ms=LATENESS_MS, keep_rows=True)
    try:
        got = [done for batch in batches for done in sharded.submit(batch)] + sharded.finish()
    finally:
        sharded.close()
    assert len(got) == len(expected)
    for theirs, ours in zip(got, expected):
        assert [(d.reason, d.offset, d.value) for d in theirs.dead_letters] == \
            [(d.reason, d.offset, d.value) for d in ours.dead_letters]
        assert theirs.rows == ours.rows
        assert theirs.alerts == ours.alerts
        assert theirs.links == ours.links
    assert dataclasses.asdict(sharded.counters) == dataclasses.asdict(one.counters)
    assert (sharded.keys, sharded.state_bytes) == (len(states), sum(map(len, states.values())))


def test_routing_key_is_the_key_parse_event_gives():
    """A record reaches the process that owns the key ``parse_event`` gives it, whatever its
    bytes: duplicate fields, nesting, a lone surrogate's escape (msgspec refuses it, json not),
    and the bad-input corpus."""
    cases = [raw for raw, _ in CORPUS.values()] + [
        enc(good()),
        enc(good()).replace(b'"api_key_id":"key_bad"', b'"api_key_id":"first","api_key_id":"second"'),
        enc(good(params={"api_key_id": "nested", "max_tokens": 10})),
        enc(good(prompt="a lone \ud800 surrogate")).replace(b"\\\\ud800", b"\\ud800"),
        enc(good(api_key_id="key \u00e9\u4e2d")),
    ]
    events = 0
    for raw in cases:
        parsed = parse_event(raw)
        if isinstance(parsed, RequestEvent):
            events += 1
            assert routing_key(raw) == parsed.api_key_id, raw[:120]
    assert events >= 5


class _FailingPipeline(KeyPipeline):
    """Fails on one key's events, as a bug in the detector would."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    def step_decoded(self, st, event, offset=None):
        if event.api_key_id == "demo_sweeper" and st.n >= 3:
            if self.how == "exit":
                os._exit(3)
            raise RuntimeError("detector bug")
        return super().step_decoded(st, event, offset)


@pytest.mark.parametrize("how, message", [("raise", "RuntimeError: detector bug"), ("exit", "exit code 3")])
def test_a_failing_process_fails_the_replay_and_does_not_hang(stream, tmp_path, how, message):
    with pytest.raises(ReplayWorkerError, match=message):
        run_replay(stream, tmp_path / "alerts.jsonl", progress=False, pipeline=_FailingPipeline(how), jobs=2)


def test_the_command_line_replays_with_the_jobs_asked_and_refuses_zero(stream, tmp_path, capsys):
    from distillguard import cli

    assert cli.build_parser().parse_args(["replay", "x", "--alerts", "a"]).jobs == cli.default_replay_jobs() >= 1
    with pytest.raises(SystemExit):
        cli.main(["replay", str(stream), "--alerts", str(tmp_path / "a.jsonl"), "--jobs", "0"])
    assert "--jobs must be 1 or more" in capsys.readouterr().err
    outs = []
    for jobs in ("1", "3"):
        out = tmp_path / f"alerts-{jobs}.jsonl"
        assert cli.main(["replay", str(stream), "--alerts", str(out), "-q", "--jobs", jobs]) == 0
        outs.append(out.read_bytes())
    assert outs[0] and outs[0] == outs[1]


def test_a_record_whose_routing_key_is_not_its_key_fails_the_replay(stream, tmp_path, monkeypatch):
    """The owner of a key is chosen from ``routing_key``; a process that begins the state of a
    key it was not given (the two disagreed: a bug) fails the replay, never splits the key."""
    import distillguard.replay_shards as replay_shards

    monkeypatch.setattr(replay_shards, "routing_key", lambda raw: "not-" + (routing_key(raw) or ""))
    with pytest.raises(ReplayWorkerError, match="which does not own them"):
        run_replay(stream, tmp_path / "alerts.jsonl", progress=False, pipeline=_pipeline(), jobs=2)


def test_keys_go_to_the_process_with_the_fewest_records():
    from distillguard.replay_shards import KeyOwners

    owners = KeyOwners(2)
    keys = ["busy"] * 600 + [f"user_{i}" for i in range(400)] + ["busy"] * 200 + [f"late_{i}" for i in range(300)]
    placed = [owners.of(key) for key in keys]
    assert owners.records == [placed.count(0), placed.count(1)] == [800, 700]  # crc32 mod 2 can put all on one
    assert all(placed[i] == 0 for i, key in enumerate(keys) if key == "busy")
