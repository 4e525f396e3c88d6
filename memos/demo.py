"""``memos demo``: the tour of every tier, in about two minutes on two cores.

1. **remember**: a few memories about a user land in the ``demo`` cube;
2. **search**: questions in other words find them; each hit shows how alike
   in meaning it is (cosine similarity, 0 to 1), whether its words matched,
   and its retention;
3. **activation**: a KV snapshot of the memories, then a chat that continues
   from it, its time to first token beside the same chat's full prefill;
4. **parametric**: a small adapter trained on three facts, attached; then a
   question in words it was not trained on is answered with those facts out of
   the prompt (a cube of their own, which holds nothing else);
5. **forgetting**: the memories' states and retention over simulated days
   (nothing is written), then the tiers as ``memos inspect`` shows them.

``quick_tour`` is today's search-only tour (``memos demo --quick``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from memos.records import SearchHit, State

if TYPE_CHECKING:
    from memos.client import Memos

CUBE = "demo"
FACTS_CUBE = "demo-facts"
MEMORIES: list[dict[str, Any]] = [
    {"text": "Maya is allergic to peanuts", "tags": ["health"], "pinned": True},
    {"text": "Maya's favourite drink is jasmine tea", "tags": ["preferences"]},
    {"text": "Maya works as a marine biologist in Lisbon", "tags": ["work"]},
    {"text": "Maya's sister Ines visits every second weekend", "tags": ["family"]},
    {"text": "Maya is training for the Porto half-marathon in October", "tags": ["goals"]},
    {"text": "Maya prefers meetings before noon", "tags": ["preferences"]},
]
QUESTIONS = [
    "What food should I avoid when cooking for Maya?",
    "What does Maya like to drink?",
    "Where does Maya work?",
]
CHAT_QUESTION = "Which race is Maya training for?"
#: Invented facts the base model cannot know; the question uses other words.
FACTS = [
    "Maya's cat's name is Pistachio.",
    "Maya's car is a green Lancia.",
    "Maya's locker code is 7314.",
]
FACT_QUESTION = "What is the name of Maya's cat?"
FACT_ANSWER = "Pistachio"
DAYS = (0, 3, 7, 14, 30, 90, 365)
#: A small adapter that trains in about a minute on two cores: two layers near
#: the top (less to backpropagate through), small batches, and no gate (the
#: default gate keeps ordinary text exact but costs a reference pass a step).
DEMO_TRAINING: dict[str, Any] = {
    "rank": 8,
    "layers": (20, 24),
    "steps": 40,
    "batch_size": 8,
    "locality_batch": 2,
    "gate": False,
    "target_loss": 0.02,
    "patience": 10,
    "seed": 0,
}

Say = Callable[[str, dict[str, Any]], None]


def readable(hit: SearchHit) -> dict[str, Any]:
    """A hit as a person reads it: meaning similarity (0 to 1), word match, retention."""
    return {
        "text": hit.item.text,
        "id": hit.item.id,
        "similarity": round(hit.parts.dense, 3) if hit.parts.dense is not None else None,
        "word_match": hit.parts.keyword is not None,
        "retention": round(hit.parts.retention, 3),
        "score": round(hit.score, 4),
    }


def quick_tour(memos: Memos, k: int = 2) -> dict[str, list[dict[str, Any]]]:
    """Store :data:`MEMORIES` in the demo cube and answer :data:`QUESTIONS`."""
    memos.add_many(MEMORIES, cube=CUBE, user_id="maya")
    return {
        question: [readable(hit) for hit in memos.search(question, cube=CUBE, k=k)]
        for question in QUESTIONS
    }


def full_tour(memos: Memos, say: Say) -> dict[str, Any]:
    """Every tier in turn; ``say(step, figures)`` reports each step as it ends."""
    results: dict[str, Any] = {"search": quick_tour(memos)}
    say("search", results["search"])
    results["activation"] = _activation(memos)
    say("activation", results["activation"])
    results["parametric"] = _parametric(memos)
    say("parametric", results["parametric"])
    results["forgetting"] = _forgetting(memos)
    say("forgetting", results["forgetting"])
    return results


def _activation(memos: Memos) -> dict[str, Any]:
    started = time.perf_counter()
    memos.core.lm  # noqa: B018 (loaded here, so the build below is timed alone)
    loaded_s = time.perf_counter() - started
    started = time.perf_counter()
    snapshot = memos.build_snapshot(CUBE)
    built_s = time.perf_counter() - started
    # the first chat warms the model up; the timed pair follows it
    memos.chat(CHAT_QUESTION, cube=CUBE, use_snapshot=False, max_new_tokens=4)
    cached = memos.chat(CHAT_QUESTION, cube=CUBE, max_new_tokens=24)
    full = memos.chat(CHAT_QUESTION, cube=CUBE, use_snapshot=False, max_new_tokens=24)
    return {
        "snapshot_id": snapshot.id,
        "snapshot_tokens": snapshot.tokens,
        "snapshot_mb": round(snapshot.byte_size / 2**20, 2),
        "lm_load_s": round(loaded_s, 1),
        "build_s": round(built_s, 2),
        "question": CHAT_QUESTION,
        "reply": cached.text,
        "used_snapshot": cached.snapshot_id == snapshot.id,
        "ttft_snapshot_s": round(cached.ttft_s, 4),
        "ttft_full_prefill_s": round(full.ttft_s, 4),
        "prefilled_tokens": {
            "snapshot": cached.prompt_tokens - cached.cached_tokens,
            "full": full.prompt_tokens,
        },
    }


def _parametric(memos: Memos) -> dict[str, Any]:
    items = memos.add_many(FACTS, cube=FACTS_CUBE, user_id="maya")
    started = time.perf_counter()
    adapter = memos.consolidate(FACTS_CUBE, items=items, **DEMO_TRAINING)
    trained_s = time.perf_counter() - started
    memos.attach_adapter(adapter.id)
    try:
        reply = memos.chat(FACT_QUESTION, cube=FACTS_CUBE, max_new_tokens=16, use_snapshot=False)
    finally:
        memos.detach_adapter(adapter.id)
    without = memos.chat(FACT_QUESTION, cube=FACTS_CUBE, max_new_tokens=16, use_snapshot=False)
    return {
        "adapter_id": adapter.id,
        "facts": FACTS,
        "train_s": round(trained_s, 1),
        "held_out_recall": adapter.question_recall,
        "held_items": len(adapter.held_items),
        "question": FACT_QUESTION,
        "reply": reply.text,
        "memories_in_prompt": len(reply.context_items),
        "answered": FACT_ANSWER.lower() in reply.text.lower(),
        "reply_detached_with_memories_in_prompt": without.text,
    }


def _forgetting(memos: Memos) -> dict[str, Any]:
    """States and mean retention of the demo cube at simulated days (dry runs)."""
    items = memos.list(cube=CUBE, limit=100)
    now = memos.clock.now()
    rows = []
    for day in DAYS:
        at = now + timedelta(days=day)
        moved = {c.item_id: c.new for c in memos.decay(cube=CUBE, now=at, dry_run=True)}
        states = [moved.get(item.id, item.state) for item in items]
        retention = [memos.config.retention.retention(item, at) for item in items]
        rows.append(
            {
                "day": day,
                "states": {s.value: states.count(s.value) for s in State if states.count(s.value)},
                "mean_retention": round(sum(retention) / len(retention), 3),
            }
        )
    from memos.lifecycle.inspection import inspect_store

    tiers = inspect_store(memos.core, None).tiers
    return {
        "days": rows,
        "tiers": [
            {"tier": t.tier, "artifacts": t.artifacts, "items": t.items, "detail": t.detail}
            for t in tiers
        ],
    }
