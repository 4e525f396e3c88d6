#!/usr/bin/env bash
# Set up (idempotent), lint, type-check and run the whole test suite.
# PostgreSQL tests start their own throwaway server when the binaries exist.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check memos cli migrations tests benchmarks examples
.venv/bin/ruff format --check memos cli migrations tests benchmarks examples
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
