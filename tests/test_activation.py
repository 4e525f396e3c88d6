"""The activation tier on the default model (SmolLM2-135M-Instruct, converted once)."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import pytest
import torch
from helpers import HashingEmbedder
from sqlalchemy import select, update

from memos import attention
from memos.activation.snapshot import restore
from memos.client import Memos
from memos.clock import ManualClock
from memos.config import MemosConfig
from memos.lm import LanguageModel, greedy, load_lm
from memos.memory_block import prefix_messages, prefix_text
from memos.store.models import Artifact

pytestmark = pytest.mark.real_model

FACTS = [
    "The user's name is Priya and she lives in Nairobi.",
    "Priya's favourite colour is teal.",
    "Priya has a parrot called Mango.",
    "Priya works night shifts at a hospital.",
]


@pytest.fixture
def mem(tmp_path: Path, lm: LanguageModel) -> Memos:  # type: ignore[override]
    memos = Memos(
        MemosConfig(home=tmp_path), embedder=HashingEmbedder(), clock=ManualClock(), lm=lm
    )
    memos.add_many(FACTS, cube="priya")
    yield memos  # type: ignore[misc]
    memos.close()


def _sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_default_model_is_converted_to_safetensors(lm: LanguageModel) -> None:
    assert (lm.path / "model.safetensors").is_file() and lm.path.name == "smollm2-135m-instruct"
    assert lm.fingerprint.startswith("lm:smollm2-135m-instruct:") and lm.layers == 30
    again = load_lm(str(lm.path), lm.path.parent)
    assert again.fingerprint == lm.fingerprint


def test_continuing_from_a_snapshot_equals_full_prefill(mem: Memos, lm: LanguageModel) -> None:
    info = mem.build_snapshot("priya", dtype="float32")  # exact; bfloat16 is tested below
    _, snapshot = mem.activation.usable("priya")  # type: ignore[misc]
    block = mem.activation.block_of(info.id)
    turns = [
        {"role": "system", "content": block},
        {"role": "user", "content": "What is my parrot called?"},
    ]
    full_text = lm.chat_text(turns, add_generation_prompt=True)
    head = prefix_text(lm, block)
    suffix = lm.encode(full_text[len(head) :])
    assert snapshot.token_ids + suffix == lm.encode(full_text)
    with torch.inference_mode():
        cached, _ = lm.forward(torch.tensor([suffix]), restore(lm, snapshot))
        full, _ = lm.forward(torch.tensor([snapshot.token_ids + suffix]))
    diff = (cached[0, -1] - full[0, -1]).abs().max().item()
    assert diff < 1e-3, diff
    from_snapshot, _ = greedy(lm, suffix, restore(lm, snapshot), 12, 0.0)
    from_scratch, _ = greedy(lm, snapshot.token_ids + suffix, None, 12, 0.0)
    assert from_snapshot == from_scratch and from_snapshot


def test_chat_uses_snapshot_and_never_mutates_it(mem: Memos) -> None:
    info = mem.build_snapshot("priya")
    before_sha = _sha(info.path)
    _, loaded = mem.activation.usable("priya")  # type: ignore[misc]
    copies = {name: t.clone() for name, t in loaded.tensors.items()}
    first = mem.chat("What colour do I like?", cube="priya", max_new_tokens=8)
    second = mem.chat("And what is my parrot called?", cube="priya", max_new_tokens=8)
    for reply in (first, second):
        assert reply.snapshot_id == info.id and reply.cached_tokens == info.tokens
        assert reply.prompt_tokens > reply.cached_tokens
    assert _sha(info.path) == before_sha
    assert all(torch.equal(copies[n], t) for n, t in loaded.tensors.items())
    _, reloaded = mem.activation.usable("priya")  # type: ignore[misc]
    assert all(t.shape[-2] == info.tokens for t in reloaded.tensors.values())


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_restored_cache_holds_the_snapshot_and_generation_never_copies_it(
    mem: Memos, lm: LanguageModel, dtype: str
) -> None:
    mem.build_snapshot("priya", dtype=dtype)
    _, snapshot = mem.activation.usable("priya")  # type: ignore[misc]
    copies = {name: t.clone() for name, t in snapshot.tensors.items()}
    cache = restore(lm, snapshot)
    suffix = lm.encode("<|im_start|>user\nWhat is my parrot called?<|im_end|>\n")
    output, _ = greedy(lm, suffix, cache, 6, 0.0)
    assert output
    assert all(torch.equal(copies[n], t) for n, t in snapshot.tensors.items())
    for i, layer in enumerate(cache.layers):
        # The snapshot is the prefix itself, in its stored dtype: never copied, never grown.
        keys, values = layer.prefix
        assert keys.data_ptr() == snapshot.tensors[f"k.{i}"].data_ptr()
        assert values.data_ptr() == snapshot.tensors[f"v.{i}"].data_ptr()
        assert keys.dtype == getattr(torch, dtype)
        assert layer.keys.shape[-2] == len(suffix) + len(output) - 1  # the tail
        assert layer.keys.dtype == lm.dtype
    assert cache.get_seq_length() == snapshot.tokens + len(suffix) + len(output) - 1


@pytest.mark.parametrize("bf16_gemm", [False, True], ids=["flash-kernel", "bf16-gemm"])
def test_half_precision_snapshot_gives_the_same_reply(
    mem: Memos, lm: LanguageModel, bf16_gemm: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both prefix paths run on any CPU; a CPU with bf16 arithmetic takes the GEMM one.
    monkeypatch.setattr(attention, "_cpu_has_bf16", lambda: bf16_gemm)
    info = mem.build_snapshot("priya", dtype="bfloat16")
    _, snapshot = mem.activation.usable("priya")  # type: ignore[misc]
    block = mem.activation.block_of(info.id)
    turns = [*prefix_messages(block), {"role": "user", "content": "What is my parrot called?"}]
    suffix = lm.encode(lm.chat_text(turns, True)[len(prefix_text(lm, block)) :])
    from_snapshot, _ = greedy(lm, suffix, restore(lm, snapshot), 12, 0.0)
    from_scratch, _ = greedy(lm, snapshot.token_ids + suffix, None, 12, 0.0)
    assert from_snapshot == from_scratch and from_snapshot


def test_chat_records_the_snapshots_use(mem: Memos) -> None:
    info = mem.build_snapshot("priya")
    assert mem.activation.usable("priya", touch=False) is not None
    assert mem.activation.info(info.id).last_used_at is None
    mem.chat("What colour do I like?", cube="priya", max_new_tokens=2)
    assert mem.activation.info(info.id).last_used_at is not None


def test_without_snapshot_chat_reads_plaintext(mem: Memos) -> None:
    reply = mem.chat("What is my parrot called?", cube="priya", max_new_tokens=8)
    assert reply.snapshot_id is None and reply.cached_tokens == 0 and reply.new_tokens > 0


@pytest.mark.parametrize("change", ["update", "delete", "purge"])
def test_changed_sources_make_a_snapshot_stale(mem: Memos, change: str) -> None:
    info = mem.build_snapshot("priya")
    item = mem.list(cube="priya", limit=1)[0]
    if change == "update":
        mem.update(item.id, item.text + " (corrected)")
    elif change == "delete":
        mem.delete(item.id)
    else:
        mem.purge(item.id)
    if change == "purge":  # a purge deletes what was built from the item
        assert mem.activation.snapshots("priya") == [] and not Path(info.path).exists()
    else:
        assert mem.activation.info(info.id).stale
    assert mem.activation.usable("priya") is None
    assert mem.chat("hello", cube="priya", max_new_tokens=2).snapshot_id is None


@pytest.mark.parametrize("damage", ["truncate", "flip", "missing"])
def test_damaged_snapshot_is_dropped_never_loaded(mem: Memos, damage: str) -> None:
    info = mem.build_snapshot("priya")
    path = Path(info.path)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 3])
    elif damage == "flip":
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    else:
        path.unlink()
    with pytest.warns(UserWarning, match="dropping"):
        assert mem.activation.usable("priya") is None
    assert mem.activation.snapshots("priya") == []


def test_other_models_snapshot_is_not_used(mem: Memos) -> None:
    info = mem.build_snapshot("priya")
    mem.db.write(
        lambda s: s.execute(
            update(Artifact).where(Artifact.id == info.id).values(model_fingerprint="lm:other:0")
        )
    )
    with pytest.warns(UserWarning, match="another model"):
        assert mem.activation.usable("priya") is None


def test_budget_evicts_least_recently_used(mem: Memos) -> None:
    first = mem.build_snapshot("priya", max_tokens=64)
    mem.core.config = mem.config.with_(kv_budget_bytes=first.byte_size + 1)
    mem.activation.usable("priya")
    second = mem.build_snapshot("priya", query="parrot", max_tokens=64)
    assert [s.id for s in mem.activation.snapshots("priya")] == [second.id]
    with mem.db.read() as session:
        assert session.scalar(select(Artifact).where(Artifact.id == first.id)) is None
    assert not Path(first.path).exists()


def test_half_precision_halves_bytes(mem: Memos) -> None:
    full = mem.build_snapshot("priya", dtype="float32")
    half = mem.build_snapshot("priya", dtype="float16")
    assert half.byte_size < 0.6 * full.byte_size
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mem.activation.usable("priya")[0].id == half.id  # type: ignore[index]


def test_kv_cli(tmp_path: Path, lm: LanguageModel, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from memos.cli.main import app
    from typer.testing import CliRunner

    monkeypatch.setenv("MEMOS_LM", str(lm.path))
    runner = CliRunner()

    def run(*args: str):  # type: ignore[no-untyped-def]
        result = runner.invoke(app, ["--home", str(tmp_path / "h"), *args])
        assert result.exit_code == 0, result.output
        return result

    for fact in FACTS:
        run("add", fact, "-c", "priya")
    built = json.loads(run("kv", "build", "-c", "priya", "--max-tokens", "128", "--json").stdout)
    assert built["tokens"] <= 128 and built["items"] >= 1
    listed = json.loads(run("kv", "ls", "--json").stdout)
    assert [s["id"] for s in listed] == [built["id"]]
    reply = json.loads(
        run(
            "chat", "What is my parrot called?", "-c", "priya", "--max-new-tokens", "4", "--json"
        ).stdout
    )
    assert reply["snapshot_id"] == built["id"]
    run("kv", "rm", built["id"])
    assert json.loads(run("kv", "ls", "--json").stdout) == []
    missing = runner.invoke(app, ["--home", str(tmp_path / "h"), "kv", "rm", "nope"])
    assert missing.exit_code == 1 and "no snapshot" in missing.stderr


def test_batched_greedy_decoding_equals_one_prompt_at_a_time(lm: LanguageModel) -> None:
    from memos.lm import greedy_batch

    questions = ["What is the capital of Italy?", "Name a colour.", "How many legs has a spider?"]
    prompts = [lm.encode(lm.chat_text([{"role": "user", "content": q}], True)) for q in questions]
    assert len({len(p) for p in prompts}) > 1  # left padding is exercised
    batched = greedy_batch(lm, prompts, 8)
    assert batched == [greedy(lm, p, None, 8, 0.0)[0] for p in prompts]
    assert all(batched)
