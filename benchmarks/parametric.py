"""Parametric-tier quality benchmark: can an adapter replace memories in the prompt?

Two memory sets are consolidated, each into its own adapter:

- **invented facts**: "<entity>'s <attribute> is <value>", with entities and
  values made up so the model cannot know them (``--facts``, default 100);
- **free-form memories** (``--freeform``; by default
  ``benchmarks/data/freeform_heldout.json``: 100 things users tell an agent in
  their own words, "I finally got my bike fixed by Tomás last week.", with 2 or 3
  questions each that a person would ask later, written apart from the
  trainer's question generator and never trained on; the earlier 40-memory set
  is ``freeform_facts.json``). A reply answers when it holds one of the
  question's accepted answers, read by :func:`matches`: case, accents,
  punctuation and thousands separators ignored, number words read as digits.

Each row answers the same questions greedily through the chat template with no
memory text in the prompt, except "facts in prompt", which answers through
``Memos.chat`` with the memories retrieved into the prompt and no adapter
(what the adapter must replace). Measured per row:

- cue recall: the continuation of "<entity>'s <attribute> is" starts with the value;
- question recall: the reply contains the value, on question wordings that
  training never sees (:data:`HELD_OUT`; the trainer's wordings are in
  ``memos/parametric/questions.py``), and on the free-form questions;
- locality: of the ordinary questions the base model answers right
  (``benchmarks/data/locality_questions.json``, written for memos), the share
  still answered right; also read with the answer in the reply's first
  sentence, over the answers the base model gave by a clear margin
  (:data:`CLEAR_MARGIN`), and on replies read to :data:`LOCALITY_LONG_TOKENS`
  (the :data:`REPLY_TOKENS` budget cuts some mid-word: "... the Japanese y");
- perplexity increase on held-out general text, prompt tokens per question,
  training time and trainable parameters.

The side-GLU memories are gated as the tier gates them (``--no-gate``: ungated):
silent on tokens whose activation stays below a threshold calibrated on the
trainer's own locality text (``memos/data/general_*.txt``, disjoint from the
locality questions scored here).

A LoRA (peft) on the same layers' FFN with about the same parameter count is
trained by the same loop (locality term included, no gate) on the same
examples for the steps the side-GLU ran, on the same learning-rate schedule
(a cosine over ``--steps``, the step budget). Targets (issue 13), at 100 facts: held-out
question recall >= 80 %, cue recall >= 90 %, perplexity increase <= 2 %,
locality >= 95 %.

Usage: ``pip install -e '.[bench]'`` (peft), then
``python benchmarks/parametric.py [--facts 100] [--steps 300] [--rank 128] [--no-lora]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).parent))
from answers import contains, matches

from memos.config import MemosConfig
from memos.lm import LanguageModel, greedy, greedy_batch, load_lm
from memos.parametric import questions, roles
from memos.parametric import side_memory as sm
from memos.parametric import training as C

DATA = Path(__file__).parent / "data"
SYLLABLES = "ka zo ri vel mon tas quen dri ul ob far nis gor pel thi wex".split()
ATTRIBUTES = ["favourite colour", "home town", "pet's name", "lucky stone", "secret word"]
# Question wordings for the invented facts that training never sees.
HELD_OUT = (
    "Tell me {entity}'s {attribute}.",
    "What was {entity}'s {attribute} again?",
    "Quick one: {entity}'s {attribute}, please.",
    "Could you look up {entity}'s {attribute} for me?",
    "I'd like to hear {entity}'s {attribute}.",
    "Which {attribute} does {entity} have?",
)
PERPLEXITY_TEXT = [
    "The bakery on the corner sells warm rolls every morning before the shops open.",
    "Rivers carry sand and stones toward the sea, slowly changing the shape of the coast.",
    "A careful driver checks the mirrors before changing lanes on a busy road.",
    "The orchestra rehearsed for weeks before the first concert of the season.",
    "Most people sleep better in a cool, dark and quiet room.",
]
REPLY_TOKENS = 20
# Locality replies are decoded this far; the readings take their first REPLY_TOKENS
# (greedy decoding makes that prefix the 20-token reply) and all of them.
LOCALITY_LONG_TOKENS = 40
# An ordinary question is answered "clearly" when every reply token up to the end
# of the answer beat the runner-up by this much (nats); below it a greedy reply
# flips on any perturbation (an adapter trained 2 steps already loses 4 of 80).
CLEAR_MARGIN = 0.1

Fact = tuple[str, str, str]  # entity, attribute, value


def invent(n: int, seed: int = 0) -> list[Fact]:
    """``n`` (entity, attribute, value) triples with made-up names."""
    rng = random.Random(seed)

    def word(parts: int) -> str:
        return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()

    facts: list[Fact] = []
    seen: set[tuple[str, str]] = set()
    while len(facts) < n:
        entity, attribute, value = word(3), rng.choice(ATTRIBUTES), word(2)
        if (entity, attribute) not in seen:
            seen.add((entity, attribute))
            facts.append((entity, attribute, value))
    return facts


@dataclasses.dataclass(frozen=True)
class Sets:
    """Everything the rows are scored on."""

    facts: list[Fact]
    freeform: list[dict[str, Any]]
    locality: list[dict[str, Any]]

    @property
    def fact_texts(self) -> list[str]:
        return [f"{e}'s {a} is {v}." for e, a, v in self.facts]

    @property
    def freeform_texts(self) -> list[str]:
        return [item["text"] for item in self.freeform]

    def questions(self) -> list[tuple[str, str, list[str]]]:
        """(part, question, accepted answers) for every question asked."""
        asked = [
            (f"held_out_{i}", t.format(entity=e, attribute=a), [v])
            for i, t in enumerate(HELD_OUT)
            for e, a, v in self.facts
        ]
        asked += [
            ("freeform", q["question"], q["answers"])
            for item in self.freeform
            for q in item["questions"]
        ]
        return asked


def freeform_items(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Free-form memories with ``{"question", "answers"}`` questions (the 40-memory set's
    one answer per memory is every question's answer)."""
    return [
        {
            "text": item["text"],
            "questions": [
                q if isinstance(q, dict) else {"question": q, "answers": [item["answer"]]}
                for q in item["questions"]
            ],
        }
        for item in raw
    ]


def chat_prompts(lm: LanguageModel, questions: list[str]) -> list[list[int]]:
    """The prompts ``Memos.chat`` would send for ``questions`` without memories."""
    return [lm.encode(lm.chat_text([{"role": "user", "content": q}], True)) for q in questions]


def ask_all(lm: LanguageModel, questions: list[str]) -> list[tuple[str, int]]:
    """Greedy chat replies to ``questions`` with no memory in the prompt, and the prompt sizes."""
    prompts = chat_prompts(lm, questions)
    replies = greedy_batch(lm, prompts, REPLY_TOKENS)
    return [
        (lm.tokenizer.decode(reply, skip_special_tokens=True), len(prompt))
        for reply, prompt in zip(replies, prompts, strict=True)
    ]


def cue_recall(lm: LanguageModel, facts: list[Fact]) -> float:
    bos = [lm.tokenizer.bos_token_id] if lm.tokenizer.bos_token_id is not None else []
    hits = 0
    for entity, attribute, value in facts:
        out, _ = greedy(lm, bos + lm.encode(f"{entity}'s {attribute} is"), None, 8, 0.0)
        hits += lm.tokenizer.decode(out).strip().startswith(value)
    return hits / len(facts)


def perplexity(lm: LanguageModel) -> float:
    losses = []
    with torch.inference_mode():
        for text in PERPLEXITY_TEXT:
            ids = torch.tensor([lm.encode(text)])
            logits = lm.model(input_ids=ids).logits[0, :-1]
            losses.append(F.cross_entropy(logits.float(), ids[0, 1:]).item())
    return math.exp(sum(losses) / len(losses))


def locality(lm: LanguageModel, sets: Sets) -> tuple[list[list[int]], list[list[int]]]:
    """The prompts of the ordinary questions and the model's greedy replies to them
    (ids, :data:`LOCALITY_LONG_TOKENS` long)."""
    prompts = chat_prompts(lm, [q["question"] for q in sets.locality])
    return prompts, greedy_batch(lm, prompts, LOCALITY_LONG_TOKENS)


def clear_answers(
    lm: LanguageModel, sets: Sets, prompts: list[list[int]], replies: list[list[int]]
) -> list[bool]:
    """Per ordinary question, whether the model's greedy reply answers it by a clear margin.

    The reply must hold an answer, and every token up to the end of the first
    answer must have won by at least :data:`CLEAR_MARGIN` nats.
    """
    return [
        _won_clearly(lm, prompt, reply, q["answers"])
        for prompt, reply, q in zip(prompts, replies, sets.locality, strict=True)
    ]


def _won_clearly(
    lm: LanguageModel, prompt: list[int], reply: list[int], answers: list[str]
) -> bool:
    decode = lm.tokenizer.decode
    end = next((k for k in range(1, len(reply) + 1) if contains(decode(reply[:k]), answers)), None)
    if end is None:
        return False
    with torch.inference_mode():
        logits = lm.model(input_ids=torch.tensor([prompt + reply[:end]])).logits[0]
    chosen = logits[len(prompt) - 1 : len(prompt) - 1 + end].float().log_softmax(-1)  # [end, V]
    best = chosen.topk(2).values  # [end, 2]
    return bool((best[:, 0] - best[:, 1]).min() >= CLEAR_MARGIN)


def first_sentence(reply: str) -> str:
    return re.split(r"(?<=[.!?])\s|\n", reply.strip(), maxsplit=1)[0]


def answered(replies: list[str], sets: Sets, cut: Callable[[str], str] = str) -> list[bool]:
    """Per ordinary question, whether ``cut`` of its reply holds an answer."""
    return [contains(cut(r), q["answers"]) for r, q in zip(replies, sets.locality, strict=True)]


def share_kept(now: list[str], was: list[str], sets: Sets, cut: Callable[[str], str]) -> float:
    """Of the questions right before (within ``cut`` of the reply), the share still right."""
    pairs = zip(answered(now, sets, cut), answered(was, sets, cut), strict=True)
    return statistics.mean(right for right, before in pairs if before)


def lost(now: list[str], was: list[str], sets: Sets) -> list[dict[str, str]]:
    """The ordinary questions right before and wrong now, with both replies."""
    pairs = zip(now, was, sets.locality, answered(now, sets), answered(was, sets), strict=True)
    return [
        {"question": q["question"], "before": b, "after": a}
        for a, b, q, right, right_before in pairs
        if right_before and not right
    ]


def score(
    answer: Callable[[list[str]], list[tuple[str, int]]], sets: Sets, parts: tuple[str, ...]
) -> dict[str, Any]:
    """Question recall per part (held-out wordings, free-form) and mean prompt tokens."""
    hits: dict[str, list[bool]] = {}
    tokens = []
    asked = [q for q in sets.questions() if q[0].startswith(parts)]
    replies = answer([question for _, question, _ in asked])
    freeform_replies = []
    for (part, question, accepted), (reply, size) in zip(asked, replies, strict=True):
        right = matches(reply, accepted)
        hits.setdefault(part, []).append(right)
        tokens.append(size)
        if part == "freeform":
            freeform_replies.append({"question": question, "reply": reply, "right": right})
    held = [statistics.mean(h) for p, h in sorted(hits.items()) if p.startswith("held_out")]
    result: dict[str, Any] = {"prompt_tokens": statistics.mean(tokens)}
    if held:
        result |= {"question_recall": statistics.mean(held), "per_wording": held}
    if "freeform" in hits:
        result["freeform_recall"] = statistics.mean(hits["freeform"])
        result["freeform_replies"] = freeform_replies
    return result


def evaluate(
    lm: LanguageModel, sets: Sets, part: str, base: dict[str, Any] | None
) -> dict[str, Any]:
    """The scores of the model as it is now on one memory set (``facts`` or ``freeform``)."""
    result = score(
        lambda qs: ask_all(lm, qs), sets, ("held_out",) if part == "facts" else ("freeform",)
    )
    if part == "facts":
        result["cue_recall"] = cue_recall(lm, sets.facts)
    prompts, long_ids = locality(lm, sets)
    reply_ids = [r[:REPLY_TOKENS] for r in long_ids]
    replies = [lm.tokenizer.decode(r, skip_special_tokens=True) for r in reply_ids]
    long_replies = [lm.tokenizer.decode(r, skip_special_tokens=True) for r in long_ids]
    result["perplexity"] = perplexity(lm)
    if base is None:
        result["locality_replies"] = replies
        result["locality_replies_long"] = long_replies
        result["locality_clear"] = clear_answers(lm, sets, prompts, reply_ids)
        return result
    was = base["locality_replies"]
    result["locality_kept"] = share_kept(replies, was, sets, str)
    was_long = base["locality_replies_long"]
    result["locality_kept_long"] = share_kept(long_replies, was_long, sets, str)
    # a stricter reading of "answered right": the answer is in the first sentence
    result["locality_kept_first_sentence"] = share_kept(replies, was, sets, first_sentence)
    # the answers the base model gave by a clear margin, not by a coin flip
    result["locality_kept_clear"] = statistics.mean(
        right
        for right, clear in zip(answered(replies, sets), base["locality_clear"], strict=True)
        if clear
    )
    result["locality_lost"] = lost(replies, was, sets)
    result["locality_lost_long"] = lost(long_replies, was_long, sets)
    result["perplexity_increase"] = result["perplexity"] / base["perplexity"] - 1
    return result


def facts_in_prompt(lm: LanguageModel, sets: Sets) -> dict[str, Any]:
    """Both sets answered through ``Memos.chat`` with the memories retrieved into the prompt."""
    from memos.client import Memos

    with tempfile.TemporaryDirectory() as home:
        mem = Memos(MemosConfig(home=Path(home)), lm=lm)
        mem.add_many(sets.fact_texts, cube="facts")
        mem.add_many(sets.freeform_texts, cube="freeform")

        def answer(cube: str) -> Callable[[list[str]], list[tuple[str, int]]]:
            def replies(questions: list[str]) -> list[tuple[str, int]]:
                got = [
                    mem.chat(q, cube=cube, max_new_tokens=REPLY_TOKENS, use_snapshot=False)
                    for q in questions
                ]
                return [(r.text, r.prompt_tokens) for r in got]

            return replies

        facts = score(answer("facts"), sets, ("held_out",))
        freeform = score(answer("freeform"), sets, ("freeform",))
        mem.close()
    return {"facts": facts, "freeform": freeform}


def train_lora(
    lm: LanguageModel,
    texts: list[str],
    layers: tuple[int, ...],
    steps: int,
    rank: int,
    config: C.TrainConfig,
) -> tuple[Any, C.TrainReport]:
    """A peft LoRA on the FFNs of ``layers``, trained by the same loop on the same examples.

    It runs ``steps`` steps (as many as the side-GLU ran) on the same
    learning-rate schedule, a cosine over ``config.steps``.
    """
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules=["gate_proj", "up_proj", "down_proj"],
        layers_to_transform=list(layers),
        lora_dropout=0.0,
    )
    model = get_peft_model(lm.model, lora)  # wraps lm.model's modules in place
    params = [p for p in model.parameters() if p.requires_grad]
    examples = C.encode_examples(lm, texts)
    progress = _progress("LoRA")
    report = C.fit(lm, params, examples, config, layers, progress, stop_at=steps)
    return model, report


def _progress(label: str) -> Callable[[int, int], None]:
    start = time.perf_counter()

    def report(done: int, total: int) -> None:
        if done == 1 or done % 25 == 0 or done == total:
            elapsed = time.perf_counter() - start
            print(f"{label} step {done}/{total} ({elapsed:.0f} s)", file=sys.stderr, flush=True)

    return report


def _right_before(base: dict[str, Any], sets: Sets) -> dict[str, int]:
    """How many ordinary questions the base model answers right, by each reading."""
    replies = base["locality_replies"]
    return {
        "locality_questions": sum(answered(replies, sets)),
        "locality_questions_first_sentence": sum(answered(replies, sets, first_sentence)),
        "locality_questions_clear": sum(base["locality_clear"]),
        "locality_questions_long": sum(answered(base["locality_replies_long"], sets)),
    }


def _training(report: C.TrainReport, total: int) -> dict[str, Any]:
    return {
        "steps": report.steps,
        "final_loss": report.final_loss,
        "train_s": report.seconds,
        "examples": report.examples,
        "trainable_parameters": report.trainable_parameters,
        "trainable_share": report.trainable_parameters / total,
    }


def run_set(
    lm: LanguageModel,
    sets: Sets,
    part: str,
    config: C.TrainConfig,
    args: argparse.Namespace,
    save: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Before, side-GLU and LoRA rows for one memory set; ``save`` gets the rows so far."""
    texts = sets.fact_texts if part == "facts" else sets.freeform_texts
    total = sum(p.numel() for p in lm.model.parameters())  # before any adapter is on it
    base = evaluate(lm, sets, part, None)
    rows: dict[str, Any] = {
        "config": dataclasses.asdict(config),
        "before": {
            k: v for k, v in base.items() if not k.startswith(("locality_", "freeform_replies"))
        }
        | {"locality_kept": 1.0, **_right_before(base, sets)},
    }
    if args.lora_only is None:
        rows["side_glu"], report = side_glu_row(lm, sets, part, texts, config, base, total)
        steps, layers, size = report.steps, report.layers, report.trainable_parameters
        save(rows)
    else:
        steps, layers = args.lora_only, config.layers or C.default_layers(lm.layers)
        size = len(layers) * 3 * lm.model.config.hidden_size * config.rank
    if not args.no_lora:
        rows["lora"] = lora_row(
            lm, sets, part, texts, config, args, base, steps, layers, size, total
        )
        save(rows)
    return rows


def side_glu_row(
    lm: LanguageModel,
    sets: Sets,
    part: str,
    texts: list[str],
    config: C.TrainConfig,
    base: dict[str, Any],
    total: int,
) -> tuple[dict[str, Any], C.TrainReport]:
    """The side-GLU adapter trained on ``texts``, measured, and its training report.

    ``total`` is the model's parameter count without adapters.
    """
    from memos.parametric.check import check_memories

    memories, report = C.train_memories(lm, texts, config, _progress(f"side-GLU {part}"))
    check = check_memories(lm, memories, [(str(i), t) for i, t in enumerate(texts)])
    sm.attach(lm.model, "bench", memories)
    row = {
        **evaluate(lm, sets, part, base),
        **_training(report, total),
        "tier_check_recall": check.recall,
        "gate_thresholds": [m.threshold for _, m in sorted(memories.items())],
    }
    sm.detach(lm.model, "bench")
    return row, report


def lora_row(
    lm: LanguageModel,
    sets: Sets,
    part: str,
    texts: list[str],
    config: C.TrainConfig,
    args: argparse.Namespace,
    base: dict[str, Any],
    steps: int,
    layers: tuple[int, ...],
    size: int,
    total: int,
) -> dict[str, Any]:
    """The LoRA with about ``size`` parameters on ``layers``, run ``steps`` steps, measured."""
    d, i = lm.model.config.hidden_size, lm.model.config.intermediate_size
    rank = max(1, round(size / (len(layers) * 3 * (d + i))))
    # No early stop of its own: it runs the side-GLU's steps on its schedule.
    same = dataclasses.replace(
        config, lr=args.lora_lr, target_loss=0.0, patience=config.steps, gate=False
    )
    model, report = train_lora(lm, texts, layers, steps, rank, same)
    row = {
        **evaluate(lm, sets, part, base),
        **_training(report, total),
        "rank": rank,
        "lr": args.lora_lr,
    }
    model.unload()
    return row


def save(result: dict[str, Any], part: str, out: Path) -> Callable[[dict[str, Any]], None]:
    """Writes the result with ``part``'s rows so far (a long run keeps what it measured)."""

    def write(rows: dict[str, Any]) -> None:
        out.write_text(json.dumps({**result, part: rows}, indent=2) + "\n")

    return write


def kept_parts(out: Path, result: dict[str, Any], parts: list[str]) -> dict[str, Any]:
    """The parts a previous run saved in ``out`` that this run does not measure.

    Kept only when that run used the same model, facts and wordings, so that one
    file can hold a table measured part by part (each part records its config).
    """
    if not out.exists():
        return {}
    before = json.loads(out.read_text())
    if any(before.get(k) != v for k, v in result.items() if k != "threads"):
        return {}
    names = {"facts": "facts", "freeform": "freeform", "prompt": "facts_in_prompt"}
    return {names[p]: before[names[p]] for p in names if p not in parts and names[p] in before}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--facts", type=int, default=100)
    parser.add_argument("--steps", type=int, default=C.TrainConfig.steps)
    parser.add_argument("--rank", type=int, default=128)
    parser.add_argument("--lr", type=float, default=C.TrainConfig.lr)
    parser.add_argument("--lora-lr", type=float, default=5e-3)
    parser.add_argument("--locality-weight", type=float, default=C.TrainConfig.locality_weight)
    parser.add_argument("--locality-batch", type=int, default=C.TrainConfig.locality_batch)
    parser.add_argument("--no-lora", action="store_true")
    parser.add_argument(
        "--lora-only",
        type=int,
        metavar="STEPS",
        help="train no side-GLU, only the LoRA, for STEPS steps (as many as the side-GLU ran "
        "in an earlier run of the same settings) on the --steps schedule",
    )
    parser.add_argument(
        "--gate",
        action=argparse.BooleanOptionalAction,
        default=C.TrainConfig.gate,
        help="train the side-GLU gated (the tier's default)",
    )
    parser.add_argument("--parts", default="facts,freeform,prompt")
    parser.add_argument(
        "--freeform",
        default=str(DATA / "freeform_heldout.json"),
        help="the free-form memories and their held-out questions",
    )
    parser.add_argument(
        "--parser",
        action=argparse.BooleanOptionalAction,
        default=questions.ask_roles,
        help="train free-form memories on their parsed roles' questions (needs the parse "
        "extra; --no-parser, the tier's default: cloze and topic questions about their spans)",
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "parametric.json"))
    args = parser.parse_args()
    if args.lora_only is not None and (args.no_lora or args.lora_only < 1):
        parser.error("--lora-only takes a step count >= 1 and trains the LoRA (not --no-lora)")
    questions.ask_roles = args.parser
    lm = load_lm("default", MemosConfig.from_env().home)
    sets = Sets(
        invent(args.facts),
        freeform_items(json.loads(Path(args.freeform).read_text())),
        json.loads((DATA / "locality_questions.json").read_text()),
    )
    config = C.TrainConfig(
        rank=args.rank,
        steps=args.steps,
        lr=args.lr,
        locality_weight=args.locality_weight,
        locality_batch=args.locality_batch,
        gate=args.gate,
    )
    parts = args.parts.split(",")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "model": lm.path.name,
        "device": lm.device,
        "threads": torch.get_num_threads(),
        "fact_count": args.facts,
        "freeform_memories": len(sets.freeform),
        "freeform_set": Path(args.freeform).name,
        "freeform_questions": sum(len(item["questions"]) for item in sets.freeform),
        "freeform_training_questions": "roles"
        if questions.ask_roles and roles.available()
        else "spans",
        "held_out_wordings": list(HELD_OUT),
    }
    result |= kept_parts(out, result, parts)
    for part in ("facts", "freeform"):
        if part in parts:
            result[part] = run_set(lm, sets, part, config, args, save(result, part, out))
    if "prompt" in parts:
        result["facts_in_prompt"] = facts_in_prompt(lm, sets)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
