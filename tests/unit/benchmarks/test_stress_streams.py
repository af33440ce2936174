"""The stress streams of benchmarks/stress/ and what benchmarks/detection.py reports on them.

Read without the shared benchmark data: the scenario module is parsed (it imports the shared
stream builder when run), the configs are JSON, and the severity count runs on files made here.
"""
from __future__ import annotations

import ast
import csv
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
STRESS = ROOT / "benchmarks" / "stress"


def load_detection_benchmark():
    spec = importlib.util.spec_from_file_location("detection_benchmark", ROOT / "benchmarks" / "detection.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def registered_kinds() -> set[str]:
    """Kinds the scenario module registers: its ``@register("...")`` decorators."""
    tree = ast.parse((STRESS / "scenarios.py").read_text())
    kinds = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "register":
                    kinds.add(deco.args[0].value)
    return kinds


def test_every_stress_config_is_built_by_the_benchmark_and_names_only_registered_kinds():
    detection = load_detection_benchmark()
    configs = {path.stem: json.loads(path.read_text()) for path in STRESS.glob("*.json")}
    assert set(configs) == set(detection.STRESS_SEEDS)
    assert len(set(detection.STRESS_SEEDS.values())) == len(detection.STRESS_SEEDS), "one seed per stream"
    kinds = registered_kinds()
    assert kinds, "the scenario module registers no kind"
    for name, config in configs.items():
        assert config.get("_prompts", "prompts") in ("prompts", "prompts-ml"), name
        for scenario, spec in config.get("scenarios", {}).items():
            # a scenario without a kind overrides one of the builder's own (DEFAULT_CONFIG)
            if spec and "kind" in spec:
                assert spec["kind"] in kinds, (name, scenario, spec["kind"])


def test_the_issue_18_streams_have_attacks_and_hard_negatives_of_their_class():
    """Each class stream names its own kinds; none may be a stream of the builder's default
    attacks (those are switched off so the figures are about the class)."""
    expected = {"multilingual": {"ml_campaign", "ml_casual"}, "multilingual-reworded": {"ml_campaign", "ml_casual"},
                "obfuscated": {"obfuscated_campaign"},
                "fabricated-conversations": {"fabricated_conv", "multi_turn_users"},
                "content-cohort": {"content_cohort"}, "harvest-plain": {"harvest_plain"},
                "product-negatives": {"homework_app", "eval_company", "longform_service", "turned_mature"},
                "product-negatives-b": {"homework_app", "eval_company", "longform_service", "turned_mature"}}
    default_attacks = {"single_sweep", "low_and_slow", "hydra_shared_infra", "hydra_proxy", "drift", "reseller_mixed"}
    for name, kinds in expected.items():
        scenarios = json.loads((STRESS / f"{name}.json").read_text())["scenarios"]
        assert {spec["kind"] for spec in scenarios.values() if spec and "kind" in spec} == kinds, name
        assert all(scenarios.get(attack, "absent") is None for attack in default_attacks), name


def scenario_table(name: str):
    """A module-level table of the scenario module (a literal), read without importing it."""
    tree = ast.parse((STRESS / "scenarios.py").read_text())
    return next(ast.literal_eval(node.value) for node in tree.body
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name)


def test_the_reworded_stream_avoids_every_cue_phrase_and_is_read_by_the_cue_words():
    """multilingual-reworded tests the paraphrase-tolerant cue words (cues.toml [process],
    [judging]): its wrappers must hold no phrase the detector lists, or it would test the
    phrases again."""
    from distillguard.models import features, multilingual

    config = json.loads((STRESS / "multilingual-reworded.json").read_text())["scenarios"]["ml_campaign"]
    assert config["cot_wrappers"] == config["grade_wrappers"] == "reworded"
    for name, signal in (("ML_COT_REWORDED", features.PROCESS_ELICITATION), ("ML_GRADE_REWORDED", features.JUDGING)):
        table = scenario_table(name)
        assert set(config["languages"]) == set(table)
        for lang, wordings in table.items():
            for wording in wordings:
                text = wording.format(text="17 * 23 = ?", answer="391")
                assert not multilingual.families(features.normalise_prompt(text)) & multilingual.FAMILY_BITS, wording
                assert features.featurize_text(text).families & signal, wording


def write_labels(path: Path, rows: list[tuple[str, str, str]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["api_key_id", "label", "campaign_id", "scenario", "attack_from"])
        for key, label, scenario in rows:
            writer.writerow([key, label, "camp_001" if label == "attack" else "", scenario,
                             "2026-02-01T00:00:00Z" if label == "attack" else ""])


def alert(entity_type: str, entity_id: str, keys: list[str], severity: str) -> str:
    return json.dumps({"entity_type": entity_type, "entity_id": entity_id, "api_key_ids": keys,
                       "severity": severity, "alert_id": f"{entity_id}:{severity}"})


def test_benign_keys_are_counted_by_the_highest_severity_that_named_them(tmp_path):
    detection = load_detection_benchmark()
    write_labels(tmp_path / "labels.csv", [("key_app1", "benign", "homework_app"), ("key_app2", "benign", "homework_app"),
                                           ("key_eval", "benign", "eval_company"), ("key_user", "benign", "casual"),
                                           ("key_atk", "attack", "content_cohort")])
    (tmp_path / "alerts.jsonl").write_text("\n".join([
        alert("key", "key_app1", ["key_app1"], "info"),
        alert("key", "key_app1", ["key_app1"], "warning"),
        # a benign key named only as a member of a cluster incident is paged all the same
        alert("cluster", "cluster:20260201T0500Z", ["key_atk", "key_app2"], "critical"),
        alert("key", "key_eval", ["key_eval"], "info"),
        alert("key", "key_atk", ["key_atk"], "critical"),
    ]) + "\n")
    counts = detection.benign_alerted(tmp_path / "alerts.jsonl", tmp_path / "labels.csv")
    assert counts == {"homework_app": {"keys": 2, "info": 0, "warning": 1, "critical": 1},
                      "eval_company": {"keys": 1, "info": 1, "warning": 0, "critical": 0},
                      "casual": {"keys": 1, "info": 0, "warning": 0, "critical": 0}}
    table = detection.markdown([{"stream": "s", "events": 1, "keys": 5, "score": {}, "events_per_second": 1,
                                 "state_bytes_per_key": 1, "cluster_records_per_second": None,
                                 "clusters": {"incidents": 0, "largest_incident_keys": 0,
                                              "most_campaigns_in_one_incident": 0, "purity": None,
                                              "most_incidents_per_campaign": 0},
                                 "key_history": {"turned_keys": 0, "turned_keys_told": 0, "turned_called_turned": None,
                                                 "turned_event_error_median": None, "turned_event_error_p90": None,
                                                 "from_start_keys_told": 0, "from_start_called_from_first_events": None},
                                 "benign_alerted": counts}])
    assert "| s | 4 | 1 | 1 | 1 | homework_app (1/2) |" in table


def test_a_cached_stream_says_whether_todays_builder_built_it_and_is_rebuilt_only_when_asked(tmp_path, capsys):
    """A stream reused from var/streams/ is today's only if its builder.txt names today's
    builder: a changed builder file, config or seed is another fingerprint, and the stream is
    reported stale (rebuilt with --rebuild-stale); a stream without a stamp is unknown."""
    detection = load_detection_benchmark()
    builder = tmp_path / "make_stream.py"
    builder.write_text("v1")
    today = detection.builder_fingerprint([builder], "{}", 7)
    assert today == detection.builder_fingerprint([builder], "{}", 7)
    assert today != detection.builder_fingerprint([builder], "{}", 8)
    assert today != detection.builder_fingerprint([builder], '{"count": 2}', 7)
    builds = []

    def build(out):
        builds.append(out)
        (out / "events.jsonl.gz").write_bytes(b"stream")

    out = tmp_path / "stream"
    detection._reuse_or_build(out, today, False, lambda: build(out))
    assert len(builds) == 1 and detection.stream_builder(out, today) == {
        "fingerprint": today, "built_by": today, "stale": False}
    detection._reuse_or_build(out, today, True, lambda: build(out))
    assert len(builds) == 1, "today's stream is reused"
    builder.write_text("v2")  # the builder changed under the cached stream
    changed = detection.builder_fingerprint([builder], "{}", 7)
    assert detection.stream_builder(out, changed)["stale"]
    detection._reuse_or_build(out, changed, False, lambda: build(out))
    assert len(builds) == 1 and "another builder" in capsys.readouterr().err
    detection._reuse_or_build(out, changed, True, lambda: build(out))
    assert len(builds) == 2 and not detection.stream_builder(out, changed)["stale"]
    (out / detection.BUILDER_STAMP).unlink()
    assert detection.stream_builder(out, changed) == {"fingerprint": changed, "built_by": None, "stale": False}


def test_the_other_language_apps_have_a_frame_and_follow_ups_in_each_language_they_name():
    """product-negatives-j's homework apps and its mimics draw their frame and their students'
    follow-ups from ``ML_TUTOR``; a language missing there would fall back to English apps."""
    tutor = scenario_table("ML_TUTOR")
    scenarios = json.loads((STRESS / "product-negatives-j.json").read_text())["scenarios"]
    assert set(scenarios["homework_app"]["languages"]) <= set(tutor)
    assert scenarios["app_mimic"]["native_frame"] is True
    english = set(scenario_table("FOLLOW_UPS"))
    for lang, (systems, templates, follow_ups) in tutor.items():
        assert systems and follow_ups and all("{text}" in t for t in templates), lang
        assert not english & set(follow_ups), lang
