# Sourced by scripts/run.sh and scripts/test.sh: installs what the project
# needs, inside the repo, and is safe to run again (each step is skipped when
# its result is already there and up to date).
#   .venv/           Python environment with the project and its test extras, at the versions
#                    scripts/constraints.txt pins (the ones the suite last passed with)
#   .tools/          bun from the npm registry (Reflex builds its frontend with it),
#                    Reflex's and bun's caches, so nothing lands in $HOME
# No outbound call other than the package registries: telemetry and version
# checks are turned off here.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TOOLS="$ROOT/.tools"
BUN_VERSION="1.4.5"
PYTHON="${PYTHON:-python3}"

say() { printf '\033[1m==>\033[0m %s\n' "$*"; }

ensure_venv() {
  if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    "$PYTHON" -m venv .venv
  fi
  local stamp=.venv/.installed-$(cat pyproject.toml scripts/constraints.txt | sha256sum | cut -c1-16)
  if [ ! -f "$stamp" ]; then
    say "installing the project and its test tools into .venv"
    .venv/bin/python -m pip install -q --upgrade pip setuptools wheel
    .venv/bin/python -m pip install -q -c scripts/constraints.txt -e '.[test]'
    rm -f .venv/.installed-*
    touch "$stamp"
  fi
}

ensure_bun() {
  if [ ! -x "$TOOLS/node_modules/.bin/bun" ] || ! "$TOOLS/node_modules/.bin/bun" --version 2>/dev/null | grep -qx "$BUN_VERSION"; then
    say "installing bun $BUN_VERSION from the npm registry into .tools/"
    mkdir -p "$TOOLS"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS" "bun@$BUN_VERSION" >/dev/null
  fi
}

ensure_chromium() {
  if [ ! -x /usr/bin/chromium ]; then
    say "installing Debian's chromium for the browser tests"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  fi
}

export_env() {
  export PATH="$TOOLS/node_modules/.bin:$ROOT/.venv/bin:$PATH"
  export REFLEX_TELEMETRY_ENABLED=false
  export REFLEX_CHECK_LATEST_VERSION=false
  export NPM_CONFIG_REGISTRY="${NPM_CONFIG_REGISTRY:-$(npm config get registry 2>/dev/null || echo https://registry.npmjs.org/)}"
  export REFLEX_DIR="$TOOLS/reflex"
  export BUN_INSTALL_CACHE_DIR="$TOOLS/bun-cache"
  export BUN_RUNTIME_TRANSPILER_CACHE_PATH="$TOOLS/bun-transpile"
  export REFLEX_BUN_PATH="$TOOLS/node_modules/.bin/bun"
  export PYTHONUNBUFFERED=1
}
