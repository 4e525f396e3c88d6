"""A small tour: remember a few things about a user, then ask about them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memos.client import Memos

CUBE = "demo"
MEMORIES = [
    {"text": "Maya is allergic to peanuts", "tags": ["health"]},
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


def run_demo(memos: Memos, k: int = 2) -> dict[str, list[dict[str, Any]]]:
    """Store :data:`MEMORIES` in the demo cube and answer :data:`QUESTIONS`."""
    memos.add_many(MEMORIES, cube=CUBE, user_id="maya")
    return {
        question: [
            {"score": round(hit.score, 4), "text": hit.item.text, "id": hit.item.id}
            for hit in memos.search(question, cube=CUBE, k=k)
        ]
        for question in QUESTIONS
    }
