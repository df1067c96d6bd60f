# Sourced by scripts/test.sh: makes sure the Postgres and Redis the test suite
# needs are up on 127.0.0.1, starting the machine's own servers if they are
# down.  It never falls back to skipping: if they still cannot be reached the
# test run fails with a message saying which one.
wait_for() {  # name, check command
  local name="$1"; shift
  for _ in $(seq 1 30); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "FATAL: $name is not reachable; the test suite needs it (see README, 'Tests')." >&2
  return 1
}

pg_up() { .venv/bin/python -c "import psycopg; psycopg.connect('host=127.0.0.1 port=5432 user=postgres dbname=postgres', connect_timeout=2).close()"; }
redis_up() { .venv/bin/python -c "import redis; redis.Redis(host='127.0.0.1', port=6379, socket_connect_timeout=2).ping()"; }

ensure_services() {
  if ! pg_up 2>/dev/null; then
    say "starting PostgreSQL"
    if command -v pg_ctlcluster >/dev/null; then
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    fi
  fi
  wait_for "PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth)" pg_up
  if ! redis_up 2>/dev/null; then
    say "starting Redis"
    if command -v redis-server >/dev/null; then
      mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
      redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    fi
  fi
  wait_for "Redis at 127.0.0.1:6379" redis_up
}
