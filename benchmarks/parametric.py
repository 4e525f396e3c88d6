"""Parametric-tier quality benchmark: invented facts consolidated into side-GLU memories.

Facts read "<entity>'s <attribute> is <value>", with entities and values made
up so the model cannot know them. Reported before and after training:
- cue recall: greedy continuation of "<entity>'s <attribute> is" starts with the value;
- question recall: the value appears in the chat answer to "Tell me <entity>'s <attribute>.";
- perplexity on held-out general text (written for this benchmark);
- trainable parameters as a share of the model, and training time.
A LoRA (peft) on the same layers' FFN with about the same parameter count is
trained on the same data for the same steps, side by side.

Targets (issue 4): cue recall >= 90 %, perplexity increase <= 2 % at 100 facts.
Usage: ``pip install -e '.[bench]'`` (peft), then
``python benchmarks/parametric.py [--facts 100] [--steps 400] [--rank 128] [--lr 0.05]
[--lora-lr 5e-3] [--no-lora] [--out F.json]`` (about 40 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn import functional as F

from memos.chat import greedy
from memos.config import MemosConfig
from memos.lm import LanguageModel, load_lm
from memos.parametric import side_memory as sm
from memos.parametric import training as C

SYLLABLES = "ka zo ri vel mon tas quen dri ul ob far nis gor pel thi wex".split()
ATTRIBUTES = ["favourite colour", "home town", "pet's name", "lucky stone", "secret word"]
HELD_OUT = [
    "The bakery on the corner sells warm rolls every morning before the shops open.",
    "Rivers carry sand and stones toward the sea, slowly changing the shape of the coast.",
    "A careful driver checks the mirrors before changing lanes on a busy road.",
    "The orchestra rehearsed for weeks before the first concert of the season.",
    "Most people sleep better in a cool, dark and quiet room.",
]


def invent(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """``n`` (entity, attribute, value) triples with made-up names."""
    rng = random.Random(seed)

    def word(parts: int) -> str:
        return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()

    facts: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str]] = set()
    while len(facts) < n:
        entity, attribute, value = word(3), rng.choice(ATTRIBUTES), word(2)
        if (entity, attribute) not in seen:
            seen.add((entity, attribute))
            facts.append((entity, attribute, value))
    return facts


def cue_recall(lm: LanguageModel, facts: list[tuple[str, str, str]]) -> float:
    bos = [lm.tokenizer.bos_token_id] if lm.tokenizer.bos_token_id is not None else []
    hits = 0
    for entity, attribute, value in facts:
        out, _ = greedy(lm, bos + lm.encode(f"{entity}'s {attribute} is"), None, 8, 0.0)
        hits += lm.tokenizer.decode(out).strip().startswith(value)
    return hits / len(facts)


def question_recall(lm: LanguageModel, facts: list[tuple[str, str, str]]) -> float:
    hits = 0
    for entity, attribute, value in facts:
        prompt = lm.chat_text(
            [{"role": "user", "content": f"Tell me {entity}'s {attribute}."}], True
        )
        out, _ = greedy(lm, lm.encode(prompt), None, 16, 0.0)
        hits += value.lower() in lm.tokenizer.decode(out).lower()
    return hits / len(facts)


def perplexity(lm: LanguageModel) -> float:
    losses = []
    with torch.inference_mode():
        for text in HELD_OUT:
            ids = torch.tensor([lm.encode(text)])
            logits = lm.model(input_ids=ids).logits[0, :-1]
            losses.append(F.cross_entropy(logits.float(), ids[0, 1:]).item())
    return math.exp(sum(losses) / len(losses))


def evaluate(lm: LanguageModel, facts: list[tuple[str, str, str]]) -> dict[str, float]:
    return {
        "cue_recall": cue_recall(lm, facts),
        "question_recall": question_recall(lm, facts),
        "perplexity": perplexity(lm),
    }


def train_lora(
    lm: LanguageModel, texts: list[str], layers: tuple[int, ...], rank: int, config: C.TrainConfig
) -> tuple[object, C.TrainReport]:
    """A peft LoRA on the FFNs of ``layers``, trained by the same loop on the same examples."""
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
    report = C.fit(lm, params, examples, config, layers, _progress("LoRA"))
    return model, report


def _progress(label: str) -> Callable[[int, int], None]:
    start = time.perf_counter()

    def report(done: int, total: int) -> None:
        if done == 1 or done % 10 == 0 or done == total:
            elapsed = time.perf_counter() - start
            print(f"{label} step {done}/{total} ({elapsed:.0f} s)", file=sys.stderr, flush=True)

    return report


def _summary(
    scores: dict[str, float], before: dict[str, float], report: C.TrainReport, total: int
) -> dict[str, object]:
    return {
        **scores,
        "perplexity_increase": scores["perplexity"] / before["perplexity"] - 1,
        "steps": report.steps,
        "final_loss": report.final_loss,
        "train_s": report.seconds,
        "trainable_parameters": report.trainable_parameters,
        "trainable_share": report.trainable_parameters / total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--facts", type=int, default=100)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--rank", type=int, default=128)
    parser.add_argument("--lr", type=float, default=C.TrainConfig.lr)
    parser.add_argument("--lora-lr", type=float, default=5e-3)
    parser.add_argument("--no-lora", action="store_true")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "parametric.json"))
    args = parser.parse_args()
    lm = load_lm("default", MemosConfig.from_env().home)
    facts = invent(args.facts)
    texts = [f"{e}'s {a} is {v}." for e, a, v in facts]
    total = sum(p.numel() for p in lm.model.parameters())
    before = evaluate(lm, facts)
    config = C.TrainConfig(rank=args.rank, steps=args.steps, lr=args.lr)
    memories, report = C.train_memories(lm, texts, config, _progress("side-GLU"))
    sm.attach(lm.model, "bench", memories)
    after = evaluate(lm, facts)
    sm.detach(lm.model, "bench")
    result: dict[str, object] = {
        "facts": args.facts,
        "device": lm.device,
        "model": lm.path.name,
        "layers": list(report.layers),
        "examples": report.examples,
        "config": dataclasses.asdict(config),
        "before": before,
        "side_glu": _summary(after, before, report, total),
    }
    if not args.no_lora:
        d, i = lm.model.config.hidden_size, lm.model.config.intermediate_size
        lora_rank = max(1, round(report.trainable_parameters / (len(report.layers) * 3 * (d + i))))
        same_steps = dataclasses.replace(
            config, steps=report.steps, lr=args.lora_lr, target_loss=0.0, patience=report.steps
        )
        model, lora_report = train_lora(lm, texts, report.layers, lora_rank, same_steps)
        result["lora"] = {
            **_summary(evaluate(lm, facts), before, lora_report, total),
            "rank": lora_rank,
            "lr": args.lora_lr,
        }
        model.unload()  # type: ignore[attr-defined]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
