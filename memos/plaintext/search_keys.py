"""Search keys: what the keyword channel indexes for an item.

An item's display text is what the user stored and is returned as is. Its
keyword key is that text plus, per ``MemosConfig.key_fields``:

- ``speaker``: the speaker's name, unless the text already starts with it
  (``add_messages`` stores ``"<speaker>: <content>"`` by default);
- ``caption``: the caption of an image the message shared, from the item's
  metadata field ``image_caption``;
- ``date``: the day of ``event_time`` written out (``"7 May 2023"``), so a query
  naming a month or a year meets the items from then;
- ``question``: the question this item answers, taken as the turn just before it
  in its session when that turn ends with a question mark (storing memories
  under the questions they answer, as QA-memory models do, with no model). It
  is read when the key is computed; editing the question later leaves the
  answer's key as it was until the index is rebuilt.

Keys are computed from stored fields whenever the keyword index is built or
caught up, so changing ``key_fields`` needs no migration. The dense channel
embeds the display text: on the LoCoMo dev split adding the date or the
caption to the embedded text did not help MiniLM (recall@10 48.9 and 49.5
against 49.7 without), while in the keyword key the date and caption lift
BM25 from 57.6 to 60.5.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

IMAGE_CAPTION = "image_caption"


@dataclass(frozen=True)
class KeySource:
    """The stored fields of one item that its keys are made from."""

    text: str
    speaker: str | None = None
    event_time: datetime | None = None
    metadata: Mapping[str, Any] | None = None
    question: str | None = None


def keyword_key(source: KeySource, fields: tuple[str, ...]) -> str:
    """The text the keyword channel indexes for an item."""
    parts = [source.text]
    speaker = source.speaker
    if "speaker" in fields and speaker and not source.text.startswith(speaker):
        parts.insert(0, f"{speaker}:")
    caption = (source.metadata or {}).get(IMAGE_CAPTION)
    if "caption" in fields and isinstance(caption, str) and caption.strip():
        parts.append(f"[image: {caption.strip()}]")
    if "date" in fields and source.event_time is not None:
        when = source.event_time
        parts.append(f"({when.day} {when:%B %Y})")
    if "question" in fields and source.question:
        parts.append(f"[answers: {source.question}]")
    return " ".join(parts)


def asked_question(text: str, speaker: str | None) -> str | None:
    """``text`` without its ``"<speaker>: "`` prefix if it asks a question, else ``None``."""
    body = text.strip()
    if not body.endswith("?"):
        return None
    if speaker and body.startswith(f"{speaker}: "):
        body = body[len(speaker) + 2 :]
    return body
