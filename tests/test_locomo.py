"""LoCoMo-format evaluation on a synthetic file written by the tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import open_memos
from locomo_data import write_locomo

from memos import EvalDataError
from memos.eval.locomo import load_locomo, run_locomo


def test_loader_keeps_speakers_dates_and_skips_category_5(tmp_path: Path) -> None:
    samples = load_locomo(write_locomo(tmp_path / "l.json"))
    assert [len(s.questions) for s in samples] == [4, 2]
    assert {q.category for s in samples for q in s.questions} == {1, 2, 3, 4}
    first = samples[0].messages[0]
    assert first["name"] == "Ana" and first["metadata"]["dia_id"] == "D1:1"
    assert first["timestamp"].year == 2023 and first["timestamp"].month == 5
    assert "a beagle puppy" in samples[0].messages[2]["metadata"]["image_caption"]
    assert samples[0].questions[2].evidence == {"D1:4", "D2:2"}


def test_recall_report_shape_and_values(tmp_path: Path) -> None:
    result = run_locomo(
        write_locomo(tmp_path / "l.json"),
        (1, 5, 10, 20),
        memos_factory=lambda home: open_memos(home),
    )
    assert result["questions"] == 6 and result["samples"] == 2
    overall = result["overall"]
    assert set(overall) == {"recall@1", "recall@5", "recall@10", "recall@20", "mrr", "ndcg@10"}
    assert overall["recall@20"] == 1.0  # every conversation is shorter than 20 turns
    assert 0 <= overall["recall@1"] <= overall["recall@5"] <= overall["recall@10"] <= 1
    assert set(result["by_category"]) == {"1", "2", "3", "4"}
    assert result["by_category"]["4"]["n"] == 2
    assert result["timing"]["ingest_items"] == 9
    assert result["timing"]["search_p95_ms"] >= result["timing"]["search_p50_ms"] > 0


def test_an_association_check_rides_along_with_its_dense_only_figures(tmp_path: Path) -> None:
    data = write_locomo(tmp_path / "l.json")
    pairs = tmp_path / "pairs.json"
    pairs.write_text(
        json.dumps(
            [
                {"sample_id": "conv-a", "cue": "D1:4", "trigger": "any tips for string practice?"},
                {"sample_id": "conv-a", "cue": ["D1:1"], "trigger": "who needs a walk daily?"},
            ]
        )
    )
    result = run_locomo(
        data, (1, 10), memos_factory=lambda home: open_memos(home), associations=pairs
    )
    linked = result["associations"]
    assert linked["n"] == 2 and linked["recall@10"] == 1.0  # a sample has < 10 turns
    assert set(linked["dense"]) == {"recall@1", "recall@10", "mrr", "ndcg@10"}
    assert result["questions"] == 6  # the triggers are not LoCoMo questions


@pytest.mark.parametrize(
    ("pairs", "says"),
    [
        ("{}", "list of cue/trigger pairs"),
        ('[{"sample_id": "conv-a", "cue": "D1:1"}]', "trigger"),
        ('[{"sample_id": "conv-z", "cue": "D1:1", "trigger": "t"}]', "no sample"),
        ('[{"sample_id": "conv-a", "cue": "D9:9", "trigger": "t"}]', "not a turn"),
        ('[{"sample_id": "conv-a", "cue": [], "trigger": "t"}]', "not a turn"),
    ],
)
def test_a_bad_association_file_is_explained(tmp_path: Path, pairs: str, says: str) -> None:
    path = tmp_path / "pairs.json"
    path.write_text(pairs)
    with pytest.raises(EvalDataError, match=says):
        run_locomo(
            write_locomo(tmp_path / "l.json"),
            memos_factory=lambda home: open_memos(home),
            associations=path,
        )


@pytest.mark.parametrize(
    "content", ["not json", "{}", "[]", '[{"conversation": {}, "qa": []}]', '[{"qa": []}]']
)
def test_malformed_files_are_explained(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(EvalDataError):
        load_locomo(path)
    with pytest.raises(EvalDataError, match="no such file"):
        load_locomo(tmp_path / "missing.json")


@pytest.mark.real_model
def test_cli_json_on_the_real_embedder(tmp_path: Path) -> None:
    from memos.cli.main import app
    from typer.testing import CliRunner

    path = write_locomo(tmp_path / "l.json")
    result = CliRunner().invoke(app, ["eval", "locomo", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"recall@1", "recall@5", "recall@10", "recall@20", "mrr"} <= set(report["overall"])
    assert report["overall"]["recall@5"] >= 0.75  # a real model finds these easily
    assert {"by_category", "timing"} <= set(report)
