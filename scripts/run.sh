#!/usr/bin/env bash
# The run command: installs what the product needs (first run only), migrates
# the database, loads the demo data once, and starts the three processes --
# web (Reflex, http://localhost:3000), the worker (execution queue + Discord
# bot when DISCORD_BOT_TOKEN is set) and the scheduler.  Ctrl-C stops all.
set -euo pipefail
source "$(dirname "$0")/bootstrap.sh"
ensure_venv
ensure_bun
export_env

say "migrating the database"
.venv/bin/python -m backend.db.migrate
if [ "${SEED_DEMO_DATA:-true}" = "true" ] && [ "${APP_ENV:-development}" != "production" ]; then
  .venv/bin/python -m backend.services.demo_seed
fi

if [ "${APP_ENV:-development}" != "production" ]; then
  export PAPER_RANDOM_WALK_BPS="${PAPER_RANDOM_WALK_BPS:-5}"  # the demo's market moves (5 bps every 5 s)
fi
source "$ROOT/scripts/procs.sh"
start_group .venv/bin/python -m backend.workers.bot
start_group .venv/bin/python -m backend.workers.scheduler
say "starting the web app on http://localhost:${PORT:-3000} (first start builds the frontend: a minute or two)"
start_group .venv/bin/reflex run --env prod --frontend-port "${PORT:-3000}" --backend-port "${PORT:-3000}" --loglevel warning
say "running; Ctrl-C stops all three"
wait_groups
