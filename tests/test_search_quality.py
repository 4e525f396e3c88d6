"""Search-quality stages on small synthetic conversations written for these tests.

Each stage is checked for the behaviour it exists for, with and without its
knob: a neighbour turn is lifted, a speaker-named question finds that speaker's
turn, a dated question prefers that date, and score fusion keeps a strong dense
hit that a weak keyword channel misses. The index statistics fusion relies on
are checked against brute force.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import open_memos

from memos.config import MemosConfig
from memos.errors import ConfigError
from memos.eval.ablation import PLAIN, ablation_rows, parse_overrides
from memos.plaintext.dense_index import DenseIndex, IndexIdentity
from memos.plaintext.fusion import combine, normalize, ranks, rrf
from memos.plaintext.keyword import KeywordIndex
from memos.plaintext.neighbourhood import CubeLayout, Placement, smooth
from memos.plaintext.query_hints import named_period, named_speaker
from memos.plaintext.search_keys import KeySource, keyword_key

ALL_OFF = {k: v for k, v in PLAIN.items() if k not in ("key_fields", "keyword_stemming")}


def _turns(session: str, when: datetime, lines: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {"role": "user", "name": who, "content": text, "timestamp": when, "session_id": session}
        for who, text in lines
    ]


def _texts(hits: list[Any]) -> list[str]:
    return [hit.item.text for hit in hits]


# -- neighbourhood ------------------------------------------------------------


def test_smooth_lifts_the_neighbours_of_a_strong_hit_within_its_session() -> None:
    layout = CubeLayout()
    layout.upsert(
        [
            (1, Placement("s1", None, None)),
            (2, Placement("s1", None, None)),
            (3, Placement("s1", None, None)),
            (10, Placement("s2", None, None)),
            (11, Placement("s2", None, None)),
        ]
    )
    lifted = smooth({2: 3.0, 10: 0.5}, -1.0, layout, 0.5, 1, lambda pk: True)
    assert lifted[1] == lifted[3] == pytest.approx(-1.0 + 0.5 * 3.0)  # brought in by pk 2
    assert lifted[11] == pytest.approx(-1.0 + 0.5 * 0.5)
    assert lifted[2] == pytest.approx(3.0 + 0.5 * -1.0)
    assert min(lifted[1], lifted[3]) > lifted[11]
    assert 3 not in smooth({2: 3.0}, -1.0, layout, 0.5, 1, lambda pk: pk != 3)
    layout.remove([2])
    assert layout.neighbours(1, 1) == [3]


def test_a_neighbour_turn_is_lifted_into_the_results(tmp_path: Path) -> None:
    day = datetime(2024, 3, 2, tzinfo=timezone.utc)
    chat = _turns(
        "s1",
        day,
        [
            ("Ana", "Guess what, I finally booked the sailing trip"),
            ("Ben", "Wonderful, where are you heading?"),
            ("Ana", "Down the coast to a small fishing harbour"),
        ],
    ) + _turns(
        "s2",
        day.replace(month=4),
        [(w, f"That trip to town number {i} was fine") for i, w in enumerate(["Ana", "Ben"] * 4)],
    )
    query = "sailing trip booked"
    harbour = "Ana: Down the coast to a small fishing harbour"
    ranks = {}
    for weight in (0.8, 0.0):
        memos = open_memos(tmp_path / str(weight), neighbour_weight=weight, neighbour_radius=2)
        memos.add_messages(chat, cube="c")
        ranked = _texts(memos.search(query, cube="c", k=len(chat)))
        assert ranked[0] == "Ana: Guess what, I finally booked the sailing trip"
        ranks[weight] = ranked.index(harbour)
        memos.close()
    assert ranks[0.8] <= 2 < ranks[0.0]


# -- speaker ------------------------------------------------------------------


def test_a_speaker_named_question_finds_that_speakers_turn(tmp_path: Path) -> None:
    day = datetime(2024, 3, 2, tzinfo=timezone.utc)
    chat = _turns(
        "s1",
        day,
        [
            ("Ana", "I adopted a puppy from the shelter"),
            ("Ben", "I adopted a kitten from the shelter"),
        ],
    )
    memos = open_memos(tmp_path / "on")
    memos.add_messages(chat, cube="c", prefix_speaker=False)  # the name is only in the key
    hits = memos.search("What did Ben adopt from the shelter?", cube="c", k=2)
    assert hits[0].item.text == "I adopted a kitten from the shelter"
    assert memos.search("What did Ana adopt?", cube="c", k=1)[0].item.speaker == "Ana"
    memos.close()
    assert named_speaker("What did Ben adopt?", ["ana", "ben"]) == "ben"
    assert named_speaker("Did Ana meet Ben?", ["ana", "ben"]) is None
    assert named_speaker("What did Benedict do?", ["ben"]) is None


def test_keyword_keys_carry_speaker_caption_and_date_but_display_text_stays() -> None:
    when = datetime(2023, 5, 7, 14, 0, tzinfo=timezone.utc)
    source = KeySource("Nice view!", "Ana", when, {"image_caption": "a lighthouse at dusk"})
    key = keyword_key(source, ("speaker", "caption", "date"))
    assert key == "Ana: Nice view! [image: a lighthouse at dusk] (7 May 2023)"
    assert keyword_key(source, ()) == "Nice view!"
    prefixed = KeySource("Ana: Nice view!", "Ana", None, None)
    assert keyword_key(prefixed, ("speaker",)) == "Ana: Nice view!"


def test_a_caption_is_searchable_without_entering_the_text(tmp_path: Path) -> None:
    memos = open_memos(tmp_path, **ALL_OFF)
    memos.add_messages(
        [
            {"role": "user", "name": "Ana", "content": "Look at this!"},
            {"role": "user", "name": "Ana", "content": "Busy week here", "metadata": {}},
        ],
        cube="c",
    )
    memos.add_messages(
        [
            {
                "role": "user",
                "name": "Ben",
                "content": "Found this on my walk",
                "metadata": {"image_caption": "a red lighthouse on the rocks"},
            }
        ],
        cube="c",
    )
    hits = memos.search("lighthouse", cube="c", k=1, mode="keyword")
    assert hits[0].item.text == "Ben: Found this on my walk"
    memos.close()


# -- time ---------------------------------------------------------------------


def test_a_dated_question_prefers_that_date(tmp_path: Path) -> None:
    may = datetime(2023, 5, 20, tzinfo=timezone.utc)
    august = datetime(2023, 8, 12, tzinfo=timezone.utc)
    filler = [("Ben", f"Work was busy on project {i}") for i in range(10)]
    chat = (
        _turns("s1", may, [("Ana", "We spent the day at the lake"), *filler[:5]])
        + _turns("s2", august, [("Ana", "We spent a day at the lake again"), *filler[5:]])
        + _turns("s3", may.replace(year=2022), [("Ben", "A lake trip is my idea of a day off")])
    )
    query = "What did Ana do at the lake in August 2023?"
    # The keyword channel's weight stays fixed where the date is not in the keys:
    # "August 2023" would then match nothing and the query lean on the dense channel.
    for fields, weight, mode, want in (
        ((), 1.0, "hybrid", august),  # the time bonus
        (("date",), 0.0, "keyword", august),  # the date in the keyword key
        ((), 0.0, "hybrid", may),  # neither: the closer wording wins
        (("speaker", "caption", "date"), 1.0, "hybrid", august),  # both, as by default
    ):
        memos = open_memos(
            tmp_path / f"{fields}{weight}",
            key_fields=fields,
            time_weight=weight,
            keyword_evidence=1.5 if "date" in fields else 0.0,
        )
        memos.add_messages(chat, cube="c")
        assert memos.search(query, cube="c", k=1, mode=mode)[0].item.event_time == want
        memos.close()


def test_named_periods() -> None:
    now = datetime(2024, 1, 15, tzinfo=timezone.utc)
    period = named_period("What happened in May 2023?", now)
    assert period is not None and period.years == {2023} and period.months == {5}
    assert period.contains(datetime(2023, 5, 1)) and not period.contains(datetime(2023, 6, 1))
    last_year = named_period("What did she do last year?", now)
    assert last_year is not None and last_year.years == {2023} and not last_year.months
    last_month = named_period("plans from last month", now)
    assert last_month is not None and (last_month.years, last_month.months) == ({2023}, {12})
    assert named_period("What may happen next?", now) is None
    assert named_period("Did they march on?", now) is None
    assert named_period("Where did she go?", now) is None


# -- fusion -------------------------------------------------------------------


def test_fusion_keeps_a_strong_dense_hit_a_weak_keyword_channel_misses() -> None:
    # Dense: item 1 stands 7 standard deviations above the cube's mean; the
    # keyword channel matches only items 2 and 3, by one common word.
    dense = [(1, 0.90), (2, 0.31), (3, 0.30)]
    keyword = [(2, 1.10), (3, 1.00)]
    d = normalize(dense, (0.20, 0.10), "zscore", None)
    k = normalize(keyword, (0.05, 0.20), "zscore", 0.0)
    fused, floor = combine([(d, 0.6), (k, 0.4)])
    assert max(fused, key=fused.__getitem__) == 1
    assert floor == pytest.approx(0.6 * 1.0 + 0.4 * -0.25)
    # Reciprocal ranks would put item 2 (second, then first) above item 1.
    rrf = {pk: 1 / (60 + r) for r, (pk, _) in enumerate(dense, 1)}
    for r, (pk, _) in enumerate(keyword, 1):
        rrf[pk] = rrf.get(pk, 0.0) + 0.5 / (60 + r)
    assert max(rrf, key=rrf.__getitem__) == 2


def test_reciprocal_rank_fusion_weighs_ranks_and_shares_tied_ones() -> None:
    dense = [(1, 0.9), (2, 0.5), (3, 0.5)]  # 2 and 3 tie: both rank 2
    keyword = [(3, 4.0)]
    fused = rrf([(dense, 0.6), (keyword, 0.4)], 60)
    best = (0.6 + 0.4) / 61
    assert fused[1] == pytest.approx(0.6 / 61 / best)
    assert fused[2] == pytest.approx(0.6 / 62 / best)
    assert fused[3] == pytest.approx((0.6 / 62 + 0.4 / 61) / best)
    assert ranks(dense) == {1: (1, 0.9), 2: (2, 0.5), 3: (2, 0.5)}


def test_one_search_config_carries_every_search_setting() -> None:
    config = MemosConfig(home=Path("."), keyword_evidence=2.0, candidates=40)
    search = config.search
    assert (search.keyword_evidence, search.candidates, search.fusion) == (2.0, 40, "zscore")
    assert all(getattr(search, f) == getattr(config, f) for f in vars(search))


def test_minmax_and_empty_channels() -> None:
    mm = normalize([(1, 4.0), (2, 2.0), (3, 0.0)], (0.0, 0.0), "minmax", None)
    assert mm.scores == {1: 1.0, 2: 0.5, 3: 0.0}
    fused, floor = combine([(normalize([], (0, 0), "zscore", 0.0), 1.0), (mm, 1.0)])
    assert fused[1] == pytest.approx(0.5) and floor == 0.0


def test_fusion_modes_end_to_end(tmp_path: Path) -> None:
    chat = _turns(
        "s1",
        datetime(2024, 1, 1, tzinfo=timezone.utc),
        [("Ana", f"note {i} about gardening and tomatoes") for i in range(6)],
    )
    for fusion in ("zscore", "minmax", "rrf"):
        memos = open_memos(tmp_path / fusion, fusion=fusion)
        memos.add_messages(chat, cube="c")
        for mode in ("hybrid", "dense", "keyword"):
            hits = memos.search("tomatoes note 3", cube="c", k=3, mode=mode)
            assert hits and all(0 <= hit.score <= 1.0 + 1e-9 for hit in hits[:1])
        memos.close()


# -- index statistics against brute force -------------------------------------


def test_dense_score_stats_match_brute_force() -> None:
    rng = np.random.default_rng(7)
    index = DenseIndex(IndexIdentity("c", "f", 16, "flat"))
    vectors = rng.normal(size=(50, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index.upsert(range(50), vectors)
    query = vectors[3]
    index.score_stats(query)  # moments built, then kept up to date below
    index.remove(range(10, 20))
    index.upsert([5, 60], vectors[[40, 41]])
    live = np.concatenate([vectors[[i for i in range(50) if not 10 <= i < 20 and i != 5]]])
    live = np.vstack([live, vectors[[40, 41]]])
    mean, std = index.score_stats(query)
    assert mean == pytest.approx(float((live @ query).mean()), abs=1e-4)
    assert std == pytest.approx(float((live @ query).std()), abs=1e-4)


def test_keyword_stats_and_stemming() -> None:
    docs = {1: "she paints landscapes", 2: "painting class on tuesday", 3: "a quiet day"}
    for stem, matched in ((True, {1, 2}), (False, set())):
        index = KeywordIndex(stem=stem)
        index.upsert(docs.items())
        hits, (mean, std) = index.search_with_stats("painted", 5)
        assert {pk for pk, _ in hits} == matched
        scores = [dict(hits).get(pk, 0.0) for pk in docs]
        assert mean == pytest.approx(float(np.mean(scores)), abs=1e-5)
        assert std == pytest.approx(float(np.std(scores)), abs=1e-5)


def test_keyword_coverage_is_the_share_of_the_query_idf_its_best_hit_holds() -> None:
    docs = {1: "knee hurts after football", 2: "football on sunday", 3: "a quiet day"}
    index = KeywordIndex()
    index.upsert(docs.items())
    n = len(docs)

    def idf(df: int) -> float:
        return float(np.log(1 + (n - df + 0.5) / (df + 0.5)))

    total = idf(1) + idf(2) + idf(0)  # knee, football and marathon (held by none)
    assert index.coverage("knee football marathon", [1, 2]) == pytest.approx(
        (idf(1) + idf(2)) / total
    )
    assert index.coverage("knee football marathon", [2]) == pytest.approx(idf(2) / total)
    assert index.coverage("knee football", [1]) == pytest.approx(1.0)
    assert index.coverage("marathon", [1, 2, 3]) == 0.0
    assert index.coverage("the of", [1]) == 0.0  # no content word
    assert index.coverage("knee", [99]) == 0.0  # unknown item


@pytest.mark.real_model
def test_a_query_whose_words_match_nothing_specific_leans_on_the_dense_channel(
    tmp_path: Path,
) -> None:
    from memos.client import Memos
    from memos.plaintext.embedder import SentenceTransformerEmbedder

    # The cue shares no word with the question; four other memories share one
    # common word each ("travel", "leave", "sitter"), which the keyword channel finds.
    cue = "My puppy chews every shoe in the flat."
    others = [
        "I travel light.",
        "Leave the window open.",
        "The sitter from next door is Tom.",
        "We bought new curtains.",
        "The train should be on time.",
        "My sister plays chess.",
    ]
    day = datetime(2024, 3, 1, tzinfo=timezone.utc)
    chat = [
        {"role": "user", "name": "Ana", "content": text, "timestamp": day, "session_id": f"s{n}"}
        for n, text in enumerate([cue, *others])
    ]
    question = "Should I leave my dog with a sitter when I travel?"
    embedder = SentenceTransformerEmbedder("default")
    ranks = {}
    for evidence in (0.0, MemosConfig(home=tmp_path).keyword_evidence):
        config = MemosConfig(home=tmp_path / str(evidence), keyword_evidence=evidence)
        memos = Memos(config, embedder=embedder)
        memos.add_messages(chat, cube="c", prefix_speaker=False)
        ranks[evidence] = _texts(memos.search(question, cube="c", k=7)).index(cue)
        dense = _texts(memos.search(question, cube="c", k=7, mode="dense")).index(cue)
        memos.close()
    fixed, adaptive = ranks[0.0], ranks[max(ranks)]
    assert adaptive <= dense < fixed and adaptive < fixed, (ranks, dense)


# -- configuration ------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("fusion", "borda"),
        ("key_fields", ("speaker", "mood")),
        ("neighbour_weight", -0.1),
        ("neighbour_radius", 11),
        ("keyword_candidates", 0),
        ("time_weight", 11.0),
        ("keyword_evidence", -1.0),
    ],
)
def test_bad_search_knobs_are_named(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=field):
        MemosConfig(home=Path("."), **{field: value})


def test_config_overrides_are_typed() -> None:
    parsed = parse_overrides(["fusion=rrf", "candidates=80", "keyword_stemming=false"])
    assert parsed == {"fusion": "rrf", "candidates": 80, "keyword_stemming": False}
    assert parse_overrides(["key_fields=speaker,date"]) == {"key_fields": ("speaker", "date")}
    assert parse_overrides(["key_fields="]) == {"key_fields": ()}
    for bad in (["nope=1"], ["candidates=many"], ["fusion=borda"], ["fusion"]):
        with pytest.raises(ConfigError):
            parse_overrides(bad)
    rows = ablation_rows()
    assert rows["defaults"] == {} and "without neighbours" in rows and "plain + time" in rows


def test_an_answer_is_found_by_the_question_it_answers(tmp_path: Path) -> None:
    day = datetime(2024, 6, 1, tzinfo=timezone.utc)
    chat = _turns(
        "s1",
        day,
        [
            ("Ben", "Which instrument are you learning these days?"),
            ("Ana", "The violin, twice a week with a teacher"),
            ("Ben", "Nice. I painted the fence yesterday."),
        ],
    )
    for fields, found in ((("question",), True), ((), False)):
        memos = open_memos(tmp_path / str(found), key_fields=fields, **ALL_OFF)
        memos.add_messages(chat[:1], cube="c")
        memos.add_messages(chat[1:], cube="c")  # the answer comes in a later write
        hits = memos.search("instrument learning", cube="c", k=3, mode="keyword")
        assert ("Ana: The violin, twice a week with a teacher" in _texts(hits)) is found
        memos.close()


def test_the_best_hit_scores_one_even_in_a_tiny_cube(tmp_path: Path) -> None:
    mem = open_memos(tmp_path)
    mem.add_many(
        [
            "Maya is allergic to peanuts",
            "Maya's favourite drink is jasmine tea",
            "Maya works as a marine biologist in Lisbon",
            "Maya's sister Ines visits every second weekend",
        ]
    )
    for query in ("What food should I avoid when cooking for Maya?", "Where does Maya work?"):
        hits = mem.search(query, k=4)
        assert hits[0].parts.fused == pytest.approx(1.0)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    mem.close()
