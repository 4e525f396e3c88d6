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
  cloze and topic questions, by the memory asked in place ("I moved where in
  May?") and by what it says of each thing it names ("What do you remember
  about my bike?").

The wordings used for training (:data:`ASK`) and the wordings used to check an
adapter after training (:data:`CHECK`) never overlap, so a check measures
whether the memory answers questions it was not trained on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_STATEMENT = re.compile(r"^(?P<subject>.+?)\s+(?:is|are|was|were)\s+(?P<value>.+?)[.!]?$", re.I)
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
# A training wording for a thing a free-form memory names ("my bike").
ABOUT = "What do you remember about {thing}?"

_MONTHS_AND_DAYS = frozenset(
    "january february march april may june july august september october november december "
    "monday tuesday wednesday thursday friday saturday sunday mondays tuesdays wednesdays "
    "thursdays fridays saturdays sundays".split()
)
_PLACE_WORDS = frozenset("to in at from near on under into".split())
_DETERMINERS = frozenset("my our the".split())
_HONORIFICS = frozenset("mr mrs ms dr".split())
# Past forms that end a named thing ("the plumber said") without ending in -ed or -s.
_IRREGULAR_PAST = frozenset("said went got took made ran left gave told kept".split())


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
    return match["subject"].strip(), match["value"].strip()


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
        if span and span.lower() not in {*_VOICE, *_HONORIFICS} and span not in found:
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
    questions = []
    said = agent_voice(text.strip())
    found = spans(text)
    for span in found:
        blank = text.strip().replace(span, "___", 1)
        questions.append(Question(CLOZE.format(blank=blank), span, span))
        topic = text.strip().rstrip(".!?").replace(span, "...", 1)
        questions.append(Question(TOPIC.format(topic=topic), said, span))
        questions.append(Question(in_place(text, span), said, span))
    for thing in things(text):
        if found and not any(span in thing for span in found):
            questions.append(Question(ABOUT.format(thing=thing), said, found[0]))
    return questions


def in_place(text: str, span: str) -> str:
    """The memory asked with ``span`` replaced by its question word, where it stands
    ("I moved to Porto in May." → "I moved where in May?")."""
    head, _, tail = text.strip().rstrip(".!?").partition(span)
    before, after = head.split(), tail.split()
    if span.isdigit() and after[:1] and after[0].lower() in ("am", "pm"):
        wh, after = "what time", after[1:]
    elif ":" in span or span.lower() in _MONTHS_AND_DAYS or re.fullmatch(r"(19|20)\d\d", span):
        wh = "when"
        if before and before[-1].lower() in _PLACE_WORDS:
            before = before[:-1]
    elif not before:
        wh = "who"
    elif span[:1].isupper() and before[-1].lower() in _PLACE_WORDS:
        wh, before = "where", before[:-1]
    else:
        wh = "what"
    asked = " ".join([*before, wh, *after])
    return asked[:1].upper() + asked[1:] + "?"


def things(text: str) -> list[str]:
    """The things a memory names by a determiner ("my bike", "the school orchestra"):
    the next word, and the one after it unless that looks like a verb."""
    words = [w.strip(".,;:!?") for w in text.split()]
    found = []
    for i, word in enumerate(words[:-1]):
        first = words[i + 1]
        if word.lower() not in _DETERMINERS or not first or first.lower() in _FUNCTION_WORDS:
            continue
        second = words[i + 2] if i + 2 < len(words) else ""
        verb = second.endswith(("s", "ed")) or second.lower() in _IRREGULAR_PAST
        named = (
            [first] if not second or verb or second.lower() in _FUNCTION_WORDS else [first, second]
        )
        found.append(" ".join([word.lower(), *named]))
    return found


def check_questions(text: str) -> list[Question]:
    """Held-out questions for checking a trained memory (none: it cannot be checked)."""
    parsed = statement(text)
    if parsed is not None:
        return _asking(parsed, CHECK)
    return [
        Question(CHECK_CLOZE.format(blank=text.strip().replace(span, "___", 1)), span, span)
        for span in spans(text)
    ]


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
