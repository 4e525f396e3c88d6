"""A tiny randomly initialised model of the default's architecture, for tests that
need the language model's code path but not its answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def tiny_model_folder(lm: Any, folder: Path) -> Path:
    """The default model's config with small widths and its tokenizer, random weights,
    saved as a transformers folder (``MEMOS_LM`` can name it)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if (folder / "config.json").is_file():
        return folder
    config = AutoConfig.from_pretrained(str(lm.path), local_files_only=True)
    config.hidden_size, config.intermediate_size = 64, 128
    config.num_hidden_layers, config.num_attention_heads = 4, 2
    config.num_key_value_heads, config.head_dim = 1, 32
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(str(folder))
    lm.tokenizer.save_pretrained(str(folder))
    return folder
