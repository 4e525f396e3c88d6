"""A copied home is an independent home: changing the copy never touches the original."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from helpers import HashingEmbedder
from memos.cli.main import app
from typer.testing import CliRunner

from memos.client import Memos
from memos.clock import ManualClock
from memos.config import MemosConfig
from memos.lm import LanguageModel
from memos.store.artifacts import locate

FACTS = ["Zorbil's favourite colour is amberine.", "Quenta Vash's home town is Torvak."]
# no locality term or gate: their reference passes cost more than the two steps
QUICK = {
    "rank": 4,
    "steps": 2,
    "layers": (10,),
    "backend": "reference",
    "locality_weight": 0.0,
    "gate": False,
}


def _files(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in home.rglob("*") if p.is_file()}


def _open(home: Path, lm: LanguageModel) -> Memos:
    return Memos(MemosConfig(home=home), embedder=HashingEmbedder(), clock=ManualClock(), lm=lm)


def _as_legacy(home: Path, artifact_ids: list[str]) -> None:
    """Record these artifacts' paths absolute, as memos did before paths were relative."""
    with closing(sqlite3.connect(home / "memos.db")) as conn, conn:
        for artifact_id in artifact_ids:
            conn.execute(
                "UPDATE artifacts SET path = ? || '/' || path WHERE id = ?",
                (str(home), artifact_id),
            )


@pytest.mark.real_model
def test_changing_a_copied_home_leaves_the_original_byte_for_byte(
    tmp_path: Path, lm: LanguageModel
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    mem = _open(a, lm)
    items = mem.add_many(FACTS, cube="facts")
    twice = mem.activation.build("facts", [items[0], items[0]])  # registered once
    assert twice.items == 1
    snapshots = [twice.id, mem.build_snapshot("facts", items=items).id]
    adapter = mem.consolidate("facts", **QUICK).id
    mem.close()
    _as_legacy(a, [snapshots[1], adapter])
    shutil.copytree(a, b)
    original = _files(a)

    runner = CliRunner()
    cli = ["--home", str(b), "--embedder", "hashing"]
    for command in (["kv", "rm", snapshots[0]], ["adapters", "rm", adapter]):
        result = runner.invoke(app, [*cli, *command])
        assert result.exit_code == 0, result.output
    copy = _open(b, lm)
    copy.update(items[1].id, "Quenta Vash's home town is Orvak.")
    report = copy.scheduler.run("facts")
    assert [job.kind for job in report.jobs] == ["evict_snapshot"]
    assert copy.activation.snapshots() == [] and copy.parametric.adapters() == []
    copy.close()

    assert _files(a) == original
    assert not [p for p in b.rglob("*.safetensors") if p.parent.parent.name in ("kv", "adapters")]
    mem = _open(a, lm)
    for info in [*mem.activation.snapshots(), *mem.parametric.adapters()]:
        assert Path(info.path).is_file() and Path(info.path).is_relative_to(a)
    assert mem.activation.usable("facts") is not None
    mem.close()


def test_recorded_paths_never_leave_the_home(tmp_path: Path) -> None:
    home = tmp_path / "b"
    assert locate(home, "kv/c1/s.safetensors") == home / "kv" / "c1" / "s.safetensors"
    assert locate(home, str(tmp_path / "a" / "kv" / "c1" / "s.safetensors")) == (
        home / "kv" / "c1" / "s.safetensors"
    )
    assert locate(home, str(home / "adapters" / "c1" / "x")) == home / "adapters" / "c1" / "x"
    for outside in ("../a/kv/c1/s", "/etc/passwd", str(tmp_path / "a" / "memos.db"), "."):
        assert locate(home, outside) is None
