"""``distillguard replay`` as a backfill: its time window and its progress bar (ETA maths)."""
from __future__ import annotations

import io
import json

import pytest

from distillguard.cli import main
from distillguard.replay import BackfillError, ProgressBar, parse_instant_ms, progress_line, run_replay, \
    time_window_ms


def test_instants_with_and_without_a_zone_are_utc_milliseconds():
    assert parse_instant_ms("2026-02-01T00:00:00Z") == 1_769_904_000_000
    assert parse_instant_ms("2026-02-01T00:00:00") == 1_769_904_000_000  # no zone: UTC, not local time
    assert parse_instant_ms("2026-02-01T02:00:00.250+02:00") == 1_769_904_000_250
    assert parse_instant_ms("2026-02-01") == 1_769_904_000_000


@pytest.mark.parametrize("since, until", [("2026-02-01T01:00:00Z", "2026-02-01T00:00:00Z"),
                                          ("2026-02-01T00:00:00Z", "2026-02-01T00:00:00Z"),
                                          ("yesterday", "2026-02-01T00:00:00Z")])
def test_an_empty_reversed_or_unreadable_window_is_refused(since, until):
    with pytest.raises(BackfillError):
        time_window_ms(since, until)


def test_window_is_since_to_until_in_milliseconds():
    assert time_window_ms("2026-02-01T00:00:00Z", "2026-02-01T00:01:00Z") == (1_769_904_000_000,
                                                                              1_769_904_060_000)


def test_progress_line_rate_and_eta():
    # a fifth of the input in 20 s: 80 s to go; 1,000 events in 20 s: 50 a second
    line = progress_line(200, 1000, 1000, 20.0, width=10)
    assert line.startswith("[##........]  20.0%")
    assert "1,000 events" in line and "50 events/s" in line and line.endswith("ETA 0:01:20")
    assert progress_line(1000, 1000, 5, 2.0, width=4).startswith("[####] 100.0%")
    assert progress_line(1000, 1000, 5, 2.0).endswith("ETA 0:00:00")
    assert progress_line(36_000, 100_000, 10, 3600.0).endswith("ETA 1:46:40")


def test_no_eta_before_anything_is_read_and_a_share_never_above_100():
    assert progress_line(0, 1000, 0, 0.0).endswith("ETA --:--:--")
    assert progress_line(0, 0, 0, 1.0).startswith("[" + "#" * 30 + "] 100.0%")
    assert " 100.0%" in progress_line(1200, 1000, 1, 1.0)  # a topic that grew while it was read


def test_bar_is_redrawn_in_place_at_most_every_interval():
    now = [0.0]
    out = io.StringIO()
    bar = ProgressBar(100, stream=out, every_s=1.0, clock=lambda: now[0])
    now[0] = 0.5
    bar.update(10, 10)
    assert out.getvalue() == ""
    now[0] = 2.0
    bar.update(50, 50)
    bar.close(100, 100)
    drawn = out.getvalue()
    assert drawn.count("\r") == 2 and drawn.endswith("\n") and "ETA 0:00:02" in drawn


def _events(path, count):
    path.write_text("".join(json.dumps({"schema": "llm.request.v1", "event_id": f"e{i}",
                                        "ts": f"2026-02-01T00:00:{i:02d}Z", "api_key_id": "k", "account_id": "a",
                                        "model": "m", "prompt": f"question {i}"}) + "\n" for i in range(count)))


def test_no_bar_when_stderr_is_not_a_terminal(tmp_path, capsys):
    _events(tmp_path / "events.jsonl", 5)
    summary = run_replay(tmp_path / "events.jsonl", tmp_path / "alerts.jsonl", progress=True, clusters=False)
    assert summary.events == 5
    assert capsys.readouterr().err == ""  # a log file gets the summary line only (the CLI prints it)


def test_cli_wants_a_file_or_a_topic_and_a_whole_window(tmp_path, capsys):
    _events(tmp_path / "events.jsonl", 2)
    alerts = str(tmp_path / "alerts.jsonl")
    assert main(["replay", str(tmp_path / "events.jsonl"), "--from-kafka", "localhost:1", "--alerts", alerts]) == 2
    assert main(["replay", "--alerts", alerts]) == 2
    assert main(["replay", "--from-kafka", "localhost:1", "--since", "2026-02-01", "--alerts", alerts]) == 2
    err = capsys.readouterr().err
    assert "one of them" in err and "--since and --until" in err
    assert main(["replay", "-q", str(tmp_path / "events.jsonl"), "--alerts", alerts]) == 0
    assert capsys.readouterr().err.startswith("replay: 2 events")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_on_a_terminal_ends_at_100_percent_unless_quiet(tmp_path, monkeypatch):
    _events(tmp_path / "events.jsonl", 5)
    for progress, drawn in ((True, True), (False, False)):
        terminal = _Terminal()
        monkeypatch.setattr("sys.stderr", terminal)
        run_replay(tmp_path / "events.jsonl", tmp_path / "alerts.jsonl", progress=progress, clusters=False)
        assert ("100.0%  5 events" in terminal.getvalue()) is drawn
        assert terminal.getvalue().endswith("\n") is drawn
