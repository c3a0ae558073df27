#!/usr/bin/env bash
# The whole test suite, as CI runs it: set up the machine, lint, type-check, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy common ucloud_api ucloud_scheduler ucloud_host ucloud_vm ucloud_net ucloud_ipam ucloud_meta \
    ucloud_firewall ucloud_cli
exec .venv/bin/pytest "$@"
