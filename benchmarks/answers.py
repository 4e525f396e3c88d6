"""Whether a benchmark reply holds an answer: exactly (``contains``), or in other
written forms where that is unambiguous (``matches``: accents, punctuation,
thousands separators and number words aside)."""

from __future__ import annotations

import re
import unicodedata


def contains(reply: str, answers: list[str]) -> bool:
    """Whether ``reply`` holds one of ``answers`` as whole words, case aside."""
    text = reply.lower()
    return any(re.search(r"(?<!\w)" + re.escape(a.lower()) + r"(?!\w)", text) for a in answers)


NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
} | {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "hundred": "100"}


def normalized(text: str) -> str:
    """Words of ``text`` with case, accents, punctuation and thousands separators
    dropped and number words as digits ("Tomás paid 3,400" → "tomas paid 3400")."""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c)).lower()
    folded = re.sub(r"(?<=\d)[,.\s](?=\d{3}\b)", "", folded)
    return " ".join(NUMBER_WORDS.get(w, w) for w in re.findall(r"[^\W_]+", folded))


def matches(reply: str, answers: list[str]) -> bool:
    """Whether ``reply`` holds one of ``answers`` as whole words, read by :func:`normalized`."""
    said = f" {normalized(reply)} "
    wanted = (normalized(a) for a in answers)
    return any(f" {a} " in said for a in wanted if a)
