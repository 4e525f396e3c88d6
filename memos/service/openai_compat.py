"""``POST /v1/chat/completions``: an OpenAI-shaped chat endpoint with memory.

An agent written against the OpenAI client points its ``base_url`` at
``memos serve`` and its memories come along. For each request:

1. the cube is ``metadata.cube`` (else the tenant's ``default`` cube);
2. the answer comes from the **upstream** (``MEMOS_UPSTREAM_URL``, any
   OpenAI-compatible base URL, called with ``MEMOS_UPSTREAM_API_KEY``) with
   the cube's ``context()`` for the last user turn added to the system turn; or,
   with no upstream, from the **local model** through ``Memos.chat``: it
   continues from the cube's KV snapshot when one is valid (the memories are
   not prefilled again), else reads the best memories into the system turn.
   Local decoding is greedy (sampling settings are not used);
3. the answer streams as server-sent events when ``stream`` is true;
4. the user's turn is stored as a memory (``metadata.memos_store: "false"``
   opts out), after the answer, so it is not its own context.

The caller needs ``write`` (as ``/chat``: it spends the model's time and stores
the turn). The response is OpenAI's ``chat.completion`` object (or its chunks)
with a ``memos`` field besides: the cube, the memory ids read, the snapshot
used and the stored turn's id.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response, StreamingResponse

from memos.errors import InvalidInputError, MemosError, UnknownCubeError
from memos.fields import DEFAULT_CUBE
from memos.records import Reply
from memos.service import http_errors
from memos.service.callers import Caller, Writer
from memos.service.executor import READ, WRITE
from memos.service.schemas import ErrorOut

#: Longest answer when a request names no ``max_tokens``.
DEFAULT_MAX_TOKENS = 256
#: Tokens of memory the upstream's system turn gets.
CONTEXT_BUDGET_TOKENS = 512
_OPT_OUT = {"false", "0", "no", "off"}

router = APIRouter(prefix="/v1", responses={c: {"model": ErrorOut} for c in http_errors.DOCUMENTED})


@dataclass(frozen=True)
class Upstream:
    """An OpenAI-compatible base URL answers in place of the local model."""

    url: str
    api_key: str | None = None
    timeout_s: float = 300.0

    @classmethod
    def from_env(cls) -> Upstream | None:
        """``MEMOS_UPSTREAM_URL`` (and ``MEMOS_UPSTREAM_API_KEY``), or ``None``."""
        url = os.environ.get("MEMOS_UPSTREAM_URL", "").strip()
        if not url:
            return None
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"MEMOS_UPSTREAM_URL={url!r}: must start with http:// or https://")
        return cls(url.rstrip("/"), os.environ.get("MEMOS_UPSTREAM_API_KEY") or None)

    def client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return httpx.AsyncClient(base_url=self.url, timeout=self.timeout_s, headers=headers)


# -- the request ---------------------------------------------------------------------


class ContentPart(BaseModel):
    """A part of a message's content (only text parts are read)."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class CompletionIn(BaseModel):
    """OpenAI's chat completion request; fields memos does not read are passed to
    the upstream as they came."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)
    metadata: dict[str, str] | None = Field(
        None,
        description="memos reads `cube` (default: the tenant's `default` cube) and "
        '`memos_store` ("false" keeps the user\'s turn out of memory).',
    )


@dataclass(frozen=True)
class Turns:
    """A request's messages as memos reads them."""

    system: str  # the client's own system and developer turns, joined
    history: list[dict[str, str]]  # earlier user and assistant turns
    message: str  # the last user turn


def _text(message: ChatMessage) -> str:
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    parts = []
    for part in message.content:
        if part.type != "text":
            raise InvalidInputError(f"content parts of type {part.type!r} are not supported")
        parts.append(part.text or "")
    return "".join(parts)


def read_turns(messages: list[ChatMessage]) -> Turns:
    """The system text, the history and the last user turn; ``InvalidInputError``
    when the last message is not the user's."""
    if messages[-1].role != "user":
        raise InvalidInputError("the last message must be the user's")
    system = [_text(m) for m in messages if m.role in ("system", "developer")]
    history = [
        {"role": m.role, "content": _text(m)}
        for m in messages[:-1]
        if m.role in ("user", "assistant")
    ]
    return Turns("\n\n".join(s.strip() for s in system if s.strip()), history, _text(messages[-1]))


# -- the route -----------------------------------------------------------------------


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: CompletionIn, who: Writer) -> Response:
    """An OpenAI chat completion with the cube's memories (see the module docs)."""
    meta = body.metadata or {}
    cube = meta.get("cube") or DEFAULT_CUBE
    store = meta.get("memos_store", "true").strip().lower() not in _OPT_OUT
    turns = read_turns(body.messages)
    work = who.state.work
    await work.run(lambda: _prepare(who, cube, store), WRITE if store else READ)
    max_tokens = body.max_completion_tokens or body.max_tokens or DEFAULT_MAX_TOKENS
    completion = _Completion(body.model, cube, max_tokens)
    if who.state.upstream is not None:
        return await _via_upstream(who.state.upstream, body, turns, who, completion, store)

    def answer(on_text: Callable[[str], None] | None = None) -> tuple[Reply, str | None]:
        reply = who.memos.chat_stream(
            turns.message,
            cube=cube,
            history=turns.history,
            max_new_tokens=max_tokens,
            instructions=turns.system,
            on_text=on_text,
        )
        return reply, _remember(who, cube, turns.message) if store else None

    if not body.stream:
        reply, stored = await who.state.model.run(answer, WRITE)
        return JSONResponse(completion.whole(reply, stored))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return StreamingResponse(
        _local_events(who, answer, completion, include_usage), media_type="text/event-stream"
    )


def _prepare(who: Caller, cube: str, store: bool) -> None:
    """An unknown cube is created when the turn is to be stored, else refused."""
    if cube in who.memos.cubes():
        return
    if not store:
        raise UnknownCubeError(f"no cube {cube!r}")
    who.memos.create_cube(cube)


def _remember(who: Caller, cube: str, message: str) -> str:
    return who.memos.add(message, cube=cube, role="user", source="chat.completions").id


# -- answers from the local model -------------------------------------------------------


async def _local_events(
    who: Caller,
    answer: Callable[[Callable[[str], None]], tuple[Reply, str | None]],
    completion: _Completion,
    include_usage: bool,
) -> AsyncIterator[str]:
    """The reply as SSE chunks, each piece sent as the model decodes it."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[str | None] = asyncio.Queue()

    def on_text(piece: str) -> None:
        loop.call_soon_threadsafe(pieces.put_nowait, piece)

    task = asyncio.ensure_future(who.state.model.run(lambda: answer(on_text), WRITE))
    task.add_done_callback(lambda _: pieces.put_nowait(None))
    yield completion.event({"role": "assistant", "content": ""})
    while (piece := await pieces.get()) is not None:
        yield completion.event({"content": piece})
    try:
        reply, stored = task.result()
    except MemosError as exc:  # the headers are sent: the error is an event
        yield _sse({"error": {"message": str(exc), "type": type(exc).__name__}})
        return
    yield completion.event(
        {},
        finish=_finish(reply, completion.max_tokens),
        extra={"memos": completion.memos(reply, stored)},
    )
    if include_usage:
        yield _sse(
            {**completion.head("chat.completion.chunk"), "choices": [], "usage": _usage(reply)}
        )
    yield "data: [DONE]\n\n"


class _Completion:
    """OpenAI's response objects for one request."""

    def __init__(self, model: str, cube: str, max_tokens: int) -> None:
        self.max_tokens = max_tokens
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self.cube = cube

    def head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def memos(
        self, reply: Reply | None, stored: str | None, items: Sequence[str] = ()
    ) -> dict[str, Any]:
        """The ``memos`` field: the cube, memories read, snapshot, adapters, stored turn."""
        return {
            "cube": self.cube,
            "context_items": reply.context_items if reply else list(items),
            "snapshot_id": reply.snapshot_id if reply else None,
            "adapters": reply.adapters if reply else [],
            "stored_item_id": stored,
        }

    def whole(self, reply: Reply, stored: str | None) -> dict[str, Any]:
        message = {"role": "assistant", "content": reply.text}
        choice = {"index": 0, "message": message, "finish_reason": _finish(reply, self.max_tokens)}
        return {
            **self.head("chat.completion"),
            "choices": [choice],
            "usage": _usage(reply),
            "memos": self.memos(reply, stored),
        }

    def event(
        self, delta: dict[str, Any], finish: str | None = None, extra: dict[str, Any] | None = None
    ) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return _sse({**self.head("chat.completion.chunk"), "choices": [choice], **(extra or {})})


def _finish(reply: Reply, max_tokens: int) -> str:
    return "length" if reply.new_tokens >= max_tokens else "stop"


def _usage(reply: Reply) -> dict[str, Any]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.new_tokens,
        "total_tokens": reply.prompt_tokens + reply.new_tokens,
        "prompt_tokens_details": {"cached_tokens": reply.cached_tokens},
    }


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


# -- answers from the upstream ------------------------------------------------------------


def with_memory(body: CompletionIn, block: str) -> dict[str, Any]:
    """The request as the upstream gets it: the memory block added to the system
    turn (a system turn put first when there is none), memos' metadata taken out."""
    out = body.model_dump(exclude_none=True, exclude={"metadata"})
    if not block:
        return out
    messages = out["messages"]
    if messages[0]["role"] in ("system", "developer") and isinstance(
        messages[0].get("content"), str
    ):
        messages[0] = {**messages[0], "content": f"{messages[0]['content']}\n\n{block}"}
    else:
        messages.insert(0, {"role": "system", "content": block})
    return out


async def _via_upstream(
    upstream: Upstream,
    body: CompletionIn,
    turns: Turns,
    who: Caller,
    completion: _Completion,
    store: bool,
) -> Response:
    """Forward the request with the cube's memories; relay the answer."""
    block = await who.state.work.run(
        functools.partial(
            who.memos.context,
            turns.message,
            budget_tokens=CONTEXT_BUDGET_TOKENS,
            cube=completion.cube,
        )
    )
    request = with_memory(body, block.text if block.items else "")
    items = [item.id for item in block.items]

    async def remember() -> str | None:
        if not store:
            return None
        stored: str = await who.state.work.run(
            lambda: _remember(who, completion.cube, turns.message), WRITE
        )
        return stored

    client = upstream.client()
    try:
        sent = client.build_request("POST", "/chat/completions", json=request)
        answer = await client.send(sent, stream=body.stream)
        if answer.status_code >= 400:
            detail = (await answer.aread()).decode(errors="replace")
            await client.aclose()
            return _upstream_error(answer.status_code, detail)
        if not body.stream:
            data = answer.json()
            await client.aclose()
            data["memos"] = completion.memos(None, await remember(), items)
            return JSONResponse(data)
    except (httpx.HTTPError, ValueError) as exc:
        await client.aclose()
        return _upstream_error(502, f"no answer from the upstream: {type(exc).__name__}")

    async def relay() -> AsyncIterator[str]:
        try:
            async for line in answer.aiter_lines():
                if line.strip() == "data: [DONE]":
                    memos = completion.memos(None, await remember(), items)
                    yield _sse(
                        {**completion.head("chat.completion.chunk"), "choices": [], "memos": memos}
                    )
                yield line + "\n"
        finally:
            await answer.aclose()
            await client.aclose()

    return StreamingResponse(relay(), media_type="text/event-stream")


def _upstream_error(status: int, detail: str) -> JSONResponse:
    code = status if 400 <= status < 500 else 502
    return JSONResponse(
        http_errors.body("UpstreamError", f"the upstream answered {status}", detail[:2000]), code
    )
