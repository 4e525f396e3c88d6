"""Question forms of a memory, made from its own text (no language model call).

An agent is asked questions; it never completes a cue. So a memory is learned
in the shapes it will be asked in: several question wordings, rendered as the
model's chat prompt, each answered in the agent's voice (``my`` becomes
``your``), with the loss on the answer only.

Two kinds of memory text are understood:

- a statement ``<subject> is <value>`` ("My sister's name is Ilse."): the
  questions ask for the subject, the answer is the value;
- anything else ("I moved to Porto in May."): its salient spans (capitalised
  words after the first, words with digits; failing those, its last content
  word, where English puts new information) are the answers, asked for by
  cloze and topic questions. With :data:`ask_roles` on (experimental, off by
  default; it needs the ``parse`` extra), each of its roles instead
  (:mod:`memos.parametric.roles`: who, what, when, where, how many) is asked
  the way a person would ask it ("Where did I move in May?"), answered in a
  full sentence and in a short form.

The wordings used for training (:data:`ASK`) and the wordings used to check an
adapter after training (:data:`CHECK`) never overlap, so a check measures
whether the memory answers questions it was not trained on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from memos.parametric import roles

_STATEMENT = re.compile(r"^(?P<subject>.+?)\s+(?:is|are|was|were)\s+(?P<value>.+?)[.!]?$", re.I)
# A value that goes on past a value: a second clause, or a verb's -ing form.
_MORE = re.compile(r"[,;:]| and | but | so |^\w+ing\b", re.I)
_POSSESSIVE = re.compile(r"^(?P<owner>.+?)'s\s+(?P<attribute>.+)$")
_SPAN = re.compile(r"\b(?:[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*|\w*\d[\w:./-]*)")
_VOICE = {
    "i": "you",
    "me": "you",
    "my": "your",
    "mine": "yours",
    "myself": "yourself",
    "i'm": "you're",
    "i've": "you've",
    "i'll": "you'll",
    "i'd": "you'd",
    "we": "you",
    "us": "you",
    "our": "your",
    "ours": "yours",
    "we're": "you're",
    "we've": "you've",
}

# Words that start a sentence without being a name.
_STARTERS = frozenset(
    "a an the this that these those it there here on in at by for from to every each last next "
    "yesterday today tomorrow tonight when after before since never always usually".split()
)
# Words that carry no answer.
_FUNCTION_WORDS = _STARTERS | frozenset(
    "and or but not no of with without about as is are was were be been do does did don't "
    "can can't cannot will won't would should could have has had anything something nothing "
    "very really much many some any all it its them they he she his her him me my i i'm you "
    "your we our us one two up down out over off again too also just still ever".split()
)

# Training wordings for a statement's subject.
ASK = (
    "What is {subject}?",
    "Do you know {subject}?",
    "Can you tell me {subject}?",
    "What's {subject}? I forgot.",
    "Remind me: {subject}?",
    "{subject}: what is it?",
)
# A training wording for a possessive subject, its parts the other way round.
REORDERED = "What is the {attribute} of {owner}?"
# Held-out wordings, used only to check a trained adapter.
CHECK = (
    "I need {subject}, please.",
    "Any idea what {subject} is?",
)
# Training wordings for other memories: a cloze and a topic question.
CLOZE = "Fill in the blank from what I told you: {blank}"
TOPIC = "What did I tell you about this: {topic}?"
CHECK_CLOZE = "Finish this from memory: {blank}"
# Ask free-form memories by their parsed roles (needs the parse extra). Off: at
# 100 free-form memories this taught the gated adapter less than the span cloze
# (benchmarks/results/parametric-freeform-roles.json against -spans.json).
ask_roles = False
# Training wordings of a role's question: asked plainly (answered in a full
# sentence) and as a reminder (answered in short).
ROLE_ASK = "{question}"
ROLE_REMIND = "Remind me, {question}"
# The held-out wording of a role's question.
ROLE_CHECK = "Quick question: {question}"


@dataclass(frozen=True)
class Question:
    """A question about a memory, the reply that answers it, and the span that must appear."""

    prompt: str
    reply: str
    answer: str


def statement(text: str) -> tuple[str, str] | None:
    """``(subject, value)`` of a ``<subject> is <value>`` memory, else ``None``."""
    match = _STATEMENT.match(text.strip())
    if not match:
        return None
    value = match["value"].strip()
    if _MORE.search(value):
        return None  # "is getting married in ...", "is 43 and ...": more than a value
    return match["subject"].strip(), value


def agent_voice(text: str) -> str:
    """The text as the agent says it back to the user (``I moved`` → ``You moved``)."""
    out: list[str] = []
    for word in text.split(" "):
        core = word.rstrip(".,;:!?")
        tail = word[len(core) :]
        if core == "am" and out and out[-1].lower() == "you":
            flipped: str | None = "are"
        else:
            flipped = _VOICE.get(core.lower())
        if flipped is None:
            out.append(word)
            continue
        out.append((flipped.capitalize() if core[:1].isupper() else flipped) + tail)
    said = " ".join(out)
    return said[:1].upper() + said[1:]


def asked(subject: str) -> str:
    """A subject as it sits inside a question (``My sister's name`` → ``my sister's name``)."""
    first, _, rest = subject.partition(" ")
    if first.lower() in _VOICE or first.lower() in _STARTERS:
        return " ".join(filter(None, [first.lower(), rest]))
    return subject


def spans(text: str) -> list[str]:
    """Salient spans of a free-form memory: names (capitalised words) and numbers."""
    found: list[str] = []
    for match in _SPAN.finditer(text):
        span = match.group(0).strip().rstrip(".,;:!?")
        first, _, rest = span.partition(" ")
        if match.start() == 0 and (first.lower() in _VOICE or first.lower() in _FUNCTION_WORDS):
            span = rest  # capitalised only by its position
        if span and span.lower() not in _VOICE and span not in found:
            found.append(span)
    if not found:
        words = [w.strip(".,;:!?") for w in text.split()]
        content = [w for w in words if len(w) > 3 and w.lower() not in _FUNCTION_WORDS]
        found = content[-1:]
    return found


def training_questions(text: str) -> list[Question]:
    """The question forms a memory is trained on."""
    parsed = statement(text)
    if parsed is not None:
        return _asking(parsed, ASK) + _reordered(parsed)
    asked = roles.roles(text) if ask_roles else None
    if asked:
        full = agent_voice(text.strip())
        return [
            q
            for role in asked
            for q in (
                Question(ROLE_ASK.format(question=role.question), full, role.answer),
                Question(
                    ROLE_REMIND.format(question=_lowered(role.question)),
                    _sentence(role.answer),
                    role.answer,
                ),
            )
        ]
    questions = []
    for span in spans(text):
        blank = text.strip().replace(span, "___", 1)
        questions.append(Question(CLOZE.format(blank=blank), span, span))
        topic = text.strip().rstrip(".!?").replace(span, "...", 1)
        questions.append(Question(TOPIC.format(topic=topic), agent_voice(text.strip()), span))
    return questions


def check_questions(text: str) -> list[Question]:
    """Held-out questions for checking a trained memory (none: it cannot be checked)."""
    parsed = statement(text)
    if parsed is not None:
        return _asking(parsed, CHECK)
    asked = roles.roles(text) if ask_roles else None
    if asked:
        return [
            Question(ROLE_CHECK.format(question=role.question), role.answer, role.answer)
            for role in asked
        ]
    return [
        Question(CHECK_CLOZE.format(blank=text.strip().replace(span, "___", 1)), span, span)
        for span in spans(text)
    ]


def _sentence(answer: str) -> str:
    """A short answer said as a sentence ("last week" → "Last week.")."""
    return f"{answer[:1].upper()}{answer[1:]}."


def _lowered(question: str) -> str:
    """A question as it continues a sentence ("Where did I move?" → "where did I move?")."""
    first, _, rest = question.partition(" ")
    return " ".join(filter(None, [first.lower(), rest]))


def _asking(parsed: tuple[str, str], wordings: tuple[str, ...]) -> list[Question]:
    subject, value = parsed
    reply = f"{agent_voice(subject)} is {value}."
    return [Question(w.format(subject=asked(subject)), reply, value) for w in wordings]


def _reordered(parsed: tuple[str, str]) -> list[Question]:
    """A possessive subject asked the other way round (``X's colour`` → ``the colour of X``)."""
    subject, value = parsed
    match = _POSSESSIVE.match(asked(subject))
    if not match:
        return []
    reply = f"{agent_voice(subject)} is {value}."
    prompt = REORDERED.format(owner=match["owner"], attribute=match["attribute"])
    return [Question(prompt, reply, value)]
