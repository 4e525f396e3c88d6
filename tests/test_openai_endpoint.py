"""``/v1/chat/completions`` driven by the official ``openai`` client.

A real ``memos serve`` answers with the default language model (SmolLM2-135M,
on its memories); a second one, without a model, answers through the first as
its upstream (``MEMOS_UPSTREAM_URL``), with its own memories in the system turn.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import open_memos
from readme_examples import run_example
from service_helpers import ServeProcess

from memos.client import Memos
from memos.service import keys

openai = pytest.importorskip("openai", reason="the openai client is not installed (dev extra)")

pytestmark = pytest.mark.real_model


@dataclass
class Served:
    server: ServeProcess
    keys: dict[str, str]

    def client(self, who: str) -> Any:
        return openai.OpenAI(
            base_url=f"{self.server.url}/v1", api_key=self.keys.get(who, who), max_retries=0
        )

    def memos(self, who: str) -> Any:
        return Memos.connect(self.server.url, api_key=self.keys[who])


def _serve(home: Path, tenants: dict[str, tuple[str, ...]], env: dict[str, str]) -> Served:
    mem = open_memos(home)
    made = {
        name: keys.create_key(mem.db, name.split("-")[0], scopes, datetime.now())[0]
        for name, scopes in tenants.items()
    }
    mem.close()
    return Served(ServeProcess(home, env=env), made)


@pytest.fixture(scope="module")
def local(lm: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The service answering with the local model; alice keeps facts in ``pets``."""
    home = tmp_path_factory.mktemp("oai-local") / "home"
    rw, ro = ("read", "write"), ("read",)
    served = _serve(
        home,
        {"alice": rw, "alice-ro": ro, "bob": rw, "gateway": rw},
        {"MEMOS_LM": str(lm.path)},
    )
    alice = served.memos("alice")
    alice.add("The user's cat is called Miso.", cube="pets")
    alice.add("The user lives in Lisbon and works as a nurse.", cube="pets")
    yield served
    served.server.stop()


def _ask(client: Any, question: str, **kw: Any) -> Any:
    return client.chat.completions.create(
        model="memos-local",
        messages=[{"role": "user", "content": question}],
        max_tokens=kw.pop("max_tokens", 24),
        **kw,
    )


def test_answer_reads_memories_and_stores_the_turn(local: Served) -> None:
    answer = _ask(local.client("alice"), "What is my cat called?", metadata={"cube": "pets"})
    assert answer.object == "chat.completion" and answer.id.startswith("chatcmpl-")
    assert "Miso" in answer.choices[0].message.content
    assert answer.choices[0].finish_reason in ("stop", "length")
    usage = answer.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0
    extra = answer.model_extra["memos"]
    assert extra["cube"] == "pets" and len(extra["context_items"]) >= 1
    stored = local.memos("alice").get(extra["stored_item_id"])
    assert stored.text == "What is my cat called?" and stored.role == "user"


def test_stream_is_the_same_answer_piece_by_piece(local: Served) -> None:
    client = local.client("alice")
    meta = {"cube": "pets", "memos_store": "false"}
    whole = _ask(client, "What is my cat called?", metadata=meta).choices[0].message.content
    chunks = list(
        _ask(
            client,
            "What is my cat called?",
            metadata=meta,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(pieces) == whole and "Miso" in whole
    assert sum(1 for p in pieces if p) > 3  # sent as decoded, not at once
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].model_extra["memos"]["stored_item_id"] is None
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_opting_out_stores_nothing(local: Served) -> None:
    alice = local.memos("alice")
    before = alice.stats("pets").items
    _ask(local.client("alice"), "Say hi.", metadata={"cube": "pets", "memos_store": "false"})
    assert alice.stats("pets").items == before


def test_local_model_continues_from_the_snapshot(local: Served) -> None:
    alice = local.memos("alice")
    alice.add("The user's sister Ines plays the cello.", cube="family")
    snapshot = alice.build_snapshot("family")
    answer = local.client("alice").chat.completions.create(
        model="memos-local",
        messages=[
            {"role": "system", "content": "Answer in a few words."},
            {"role": "user", "content": "What instrument does Ines play?"},
        ],
        max_tokens=16,
        metadata={"cube": "family", "memos_store": "false"},
    )
    assert answer.model_extra["memos"]["snapshot_id"] == snapshot.id
    assert answer.usage.prompt_tokens_details.cached_tokens == snapshot.tokens > 0
    assert "cello" in answer.choices[0].message.content.lower()


def test_keys_scopes_and_tenants_hold(local: Served) -> None:
    with pytest.raises(openai.AuthenticationError):
        _ask(local.client("not-a-key"), "hi")
    with pytest.raises(openai.PermissionDeniedError):
        _ask(local.client("alice-ro"), "hi", metadata={"cube": "pets"})
    # bob's "pets" is his own cube: alice's memories never reach his prompt
    answer = _ask(local.client("bob"), "What is my cat called?", metadata={"cube": "pets"})
    assert answer.model_extra["memos"]["context_items"] == []
    assert "Miso" not in answer.choices[0].message.content
    assert local.memos("bob").stats("pets").items == 1  # his turn, stored in his cube
    with pytest.raises(openai.NotFoundError):
        _ask(local.client("bob"), "hi", metadata={"cube": "nope", "memos_store": "false"})
    with pytest.raises(openai.BadRequestError):
        local.client("bob").chat.completions.create(
            model="m", messages=[{"role": "assistant", "content": "the last turn is mine"}]
        )


def test_upstream_gets_the_memories_in_its_system_turn(
    local: Served, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("oai-gateway") / "home"
    env = {
        "MEMOS_UPSTREAM_URL": f"{local.server.url}/v1",
        "MEMOS_UPSTREAM_API_KEY": local.keys["gateway"],
    }
    gateway = _serve(home, {"carol": ("read", "write")}, env)
    try:
        gateway.memos("carol").add("The user's dog is called Biscuit.", cube="pets")
        client = gateway.client("carol")
        answer = _ask(client, "What is my dog called?", metadata={"cube": "pets"})
        assert "Biscuit" in answer.choices[0].message.content
        extra = answer.model_extra["memos"]
        assert len(extra["context_items"]) == 1 and extra["stored_item_id"]
        upstream = local.memos("gateway")

        def forget_upstream_turns() -> None:
            """The upstream (a memos service too) keeps the gateway's turns; clear
            them so that both calls below send it the same prompt."""
            for item in upstream.list(cube="default"):
                upstream.delete(item.id)

        meta = {"cube": "pets", "memos_store": "false"}
        forget_upstream_turns()
        whole = _ask(client, "What is my dog called?", metadata=meta).choices[0].message.content
        forget_upstream_turns()
        streamed = list(_ask(client, "What is my dog called?", metadata=meta, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        assert text == whole and "Biscuit" in text
        assert gateway.memos("carol").stats("pets").items == 2  # the fact and one turn
    finally:
        gateway.server.stop()


def test_readme_example_runs_as_written(
    local: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEMOS_URL", local.server.url)
    monkeypatch.setenv("MEMOS_API_KEY", local.keys["alice"])
    run_example("openai")
    printed = capsys.readouterr().out
    assert "Miso" in printed and printed.count("\n") >= 2  # the answer, then the stream
