#!/usr/bin/env bash
# The whole test suite, as CI runs it: set up the machine, lint, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/pytest "$@"
