"""Checking a trained adapter on questions it was not trained on.

After training, each source memory is asked its held-out questions
(:func:`memos.parametric.questions.check_questions`) with the new memories on
the model, the way a chat asks them once the memory has left the prompt: the
memory block's header as the system turn, without the memory's line. A memory
passes when every reply contains its answer. The share of answered questions is the adapter's
question recall, recorded on the artifact. Memories that cannot be asked
about (no statement, no name or number) are not counted and never pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from memos.lm import LanguageModel, greedy
from memos.memory_block import BLOCK_HEADER, prefix_messages
from memos.parametric import questions
from memos.parametric import side_memory as sm

REPLY_TOKENS = 24


@dataclass(frozen=True)
class CheckResult:
    """How an adapter answered held-out questions about its own sources."""

    questions: int
    answered: int
    passed: list[str] = field(default_factory=list)  # ids of the memories fully answered

    @property
    def recall(self) -> float | None:
        return self.answered / self.questions if self.questions else None

    def to_dict(self) -> dict[str, object]:
        return {
            "questions": self.questions,
            "answered": self.answered,
            "recall": self.recall,
            "passed": list(self.passed),
        }


def answers(lm: LanguageModel, question: questions.Question) -> bool:
    """Whether the model's greedy chat reply to the question contains its answer."""
    messages = [*prefix_messages(BLOCK_HEADER), {"role": "user", "content": question.prompt}]
    prompt = lm.chat_text(messages, True)
    output, _ = greedy(lm, lm.encode(prompt), None, REPLY_TOKENS, 0.0)
    reply = lm.tokenizer.decode(output, skip_special_tokens=True)
    return question.answer.lower() in reply.lower()


def check_memories(
    lm: LanguageModel, memories: dict[int, sm.SideGLU], sources: Sequence[tuple[str, str]]
) -> CheckResult:
    """Ask every ``(item id, text)`` source its held-out questions with ``memories`` attached."""
    name = "__check__"
    sm.attach(lm.model, name, memories)
    total = answered = 0
    passed = []
    try:
        for item_id, text in sources:
            asked = questions.check_questions(text)
            hits = sum(answers(lm, q) for q in asked)
            total, answered = total + len(asked), answered + hits
            if asked and hits == len(asked):
                passed.append(item_id)
    finally:
        sm.detach(lm.model, name)
    return CheckResult(total, answered, passed)
