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
