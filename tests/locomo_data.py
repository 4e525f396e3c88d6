"""A small synthetic file in the LoCoMo format (the real data set is never shipped)."""

from __future__ import annotations

import json
from pathlib import Path


def _turns(session: int, lines: list[tuple[str, str]]) -> list[dict]:
    return [
        {"speaker": speaker, "dia_id": f"D{session}:{i}", "text": text}
        for i, (speaker, text) in enumerate(lines, 1)
    ]


def write_locomo(path: Path) -> Path:
    """Write two samples with five categories of questions (5 must be excluded)."""
    s1 = _turns(
        1,
        [
            ("Ana", "I just adopted a puppy called Biscuit!"),
            ("Ben", "Congrats! What breed is Biscuit?"),
            ("Ana", "She is a beagle, very energetic."),
            ("Ben", "I started learning the violin last week."),
        ],
    )
    s1[2]["blip_caption"] = "a beagle puppy on a couch"
    s2 = _turns(
        2,
        [
            ("Ana", "We moved to Porto in the spring."),
            ("Ben", "My violin teacher says I am improving."),
            ("Ana", "Biscuit loves the beach in Porto."),
        ],
    )
    sample_a = {
        "sample_id": "conv-a",
        "conversation": {
            "speaker_a": "Ana",
            "speaker_b": "Ben",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": s1,
            "session_2_date_time": "10:02 am on 3 June, 2023",
            "session_2": s2,
        },
        "qa": [
            {
                "question": "What is the name of Ana's puppy?",
                "answer": "Biscuit",
                "evidence": ["D1:1"],
                "category": 1,
            },
            {
                "question": "What breed is Ana's dog?",
                "answer": "beagle",
                "evidence": ["D1:3"],
                "category": 2,
            },
            {
                "question": "Which instrument is Ben learning?",
                "answer": "violin",
                "evidence": ["D1:4; D2:2"],
                "category": 3,
            },
            {
                "question": "Where did Ana move?",
                "answer": "Porto",
                "evidence": ["D2:1", "D2:3"],
                "category": 4,
            },
            {
                "question": "What is Ben's puppy called?",
                "answer": "n/a",
                "evidence": ["D1:1"],
                "category": 5,
            },
        ],
    }
    sample_b = {
        "sample_id": "conv-b",
        "conversation": {
            "speaker_a": "Cy",
            "speaker_b": "Di",
            "session_1_date_time": "9:00 am on 1 January, 2024",
            "session_1": _turns(
                1,
                [
                    ("Cy", "I bake sourdough bread every Sunday."),
                    ("Di", "I prefer running marathons on weekends."),
                ],
            ),
        },
        "qa": [
            {
                "question": "What does Cy bake?",
                "answer": "sourdough",
                "evidence": ["D1:1"],
                "category": 1,
            },
            {
                "question": "What does Di do on weekends?",
                "answer": "running",
                "evidence": ["D1:2"],
                "category": "4",
            },
        ],
    }
    path.write_text(json.dumps([sample_a, sample_b]))
    return path
