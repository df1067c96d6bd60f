# Sourced by scripts/run.sh: starts each product process in its own process
# group and, on Ctrl-C / TERM / any one process exiting, stops every group.
# Why groups: `reflex run` starts children of its own (frontend server,
# backend workers) that do not forward TERM; killing only the direct child
# would leave them holding the port for the next run.
PROC_GROUPS=()
STOP_GRACE_SECONDS="${STOP_GRACE_SECONDS:-10}"

start_group() {  # command...  (runs in the background as the leader of a new session)
  setsid "$@" &
  PROC_GROUPS+=($!)
}

_group_alive() { kill -0 -- "-$1" 2>/dev/null; }

stop_groups() {
  trap - INT TERM EXIT
  local pgid waited=0
  for pgid in "${PROC_GROUPS[@]}"; do kill -TERM -- "-$pgid" 2>/dev/null || true; done
  while [ "$waited" -lt $((STOP_GRACE_SECONDS * 10)) ]; do
    local alive=0
    for pgid in "${PROC_GROUPS[@]}"; do _group_alive "$pgid" && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.1; waited=$((waited + 1))
  done
  for pgid in "${PROC_GROUPS[@]}"; do
    _group_alive "$pgid" && kill -KILL -- "-$pgid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}

wait_groups() {  # returns when the first process exits (or on Ctrl-C), then stops all
  trap 'stop_groups; exit 130' INT
  trap 'stop_groups; exit 143' TERM
  trap stop_groups EXIT
  wait -n "${PROC_GROUPS[@]}" || true
}
