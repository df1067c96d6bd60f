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

pids=()
cleanup() {
  trap - INT TERM EXIT
  say "stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

.venv/bin/python -m backend.workers.bot & pids+=($!)
.venv/bin/python -m backend.workers.scheduler & pids+=($!)
say "starting the web app on http://localhost:${PORT:-3000} (first start builds the frontend: a minute or two)"
.venv/bin/reflex run --env prod --frontend-port "${PORT:-3000}" --backend-port "${PORT:-3000}" --loglevel warning & pids+=($!)
wait -n "${pids[@]}"
