#!/usr/bin/env bash
# The test command: installs what the suite needs, makes sure Postgres and
# Redis are up, and runs the whole suite (unit, integration against real
# Postgres/Redis and loopback fakes, and the browser tests in Chromium).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -x`.
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
ensure_venv
ensure_bun
ensure_chromium
export_env
source "$ROOT/scripts/services.sh"
ensure_services
mkdir -p "$ROOT/test-artifacts"
say "running the test suite"
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
