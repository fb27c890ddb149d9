#!/usr/bin/env bash
# Starts / stops a private Tansu broker and a private MariaDB on loopback.
#   scripts/servers.sh start|stop|status
# Ports and directories come from the environment (defaults below), so tests,
# CI, the demo and the benchmarks can run side by side with other instances.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="${WEIR_RUN_DIR:-$ROOT/.run}"
KAFKA_PORT="${WEIR_KAFKA_PORT:-19092}"
MYSQL_PORT="${WEIR_MYSQL_PORT:-13306}"
TANSU="$ROOT/.deps/bin/tansu"
mkdir -p "$RUN"

wait_port() { # host port seconds what
  for _ in $(seq 1 $(( $3 * 10 ))); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$4 did not open $1:$2 within $3 s (log: $RUN)" >&2; return 1
}
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_tansu() {
  if alive "$RUN/tansu.pid"; then echo "tansu already running on 127.0.0.1:$KAFKA_PORT"; return; fi
  [ -x "$TANSU" ] || { echo "tansu is not installed: run scripts/setup.sh" >&2; exit 1; }
  nohup "$TANSU" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" >"$RUN/tansu.log" 2>&1 &
  echo $! > "$RUN/tansu.pid"
  wait_port 127.0.0.1 "$KAFKA_PORT" 20 tansu
  echo "tansu running on 127.0.0.1:$KAFKA_PORT"
}

start_mariadb() {
  if alive "$RUN/mariadb.pid"; then echo "mariadb already running on 127.0.0.1:$MYSQL_PORT"; return; fi
  local data="$RUN/mariadb-data"
  if [ ! -d "$data/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$data" --auth-root-authentication-method=normal \
      --user=root >"$RUN/mariadb-install.log" 2>&1
  fi
  nohup mariadbd --no-defaults --datadir="$data" --socket="$RUN/mariadb.sock" --port="$MYSQL_PORT" \
        --bind-address=127.0.0.1 --user=root --innodb-flush-log-at-trx-commit=2 \
        --max-connections=500 --log-error="$RUN/mariadb.err" >"$RUN/mariadb.log" 2>&1 &
  echo $! > "$RUN/mariadb.pid"
  wait_port 127.0.0.1 "$MYSQL_PORT" 60 mariadb
  for _ in $(seq 1 100); do
    mariadb --no-defaults -uroot -h127.0.0.1 -P"$MYSQL_PORT" -e 'select 1' >/dev/null 2>&1 && break
    sleep 0.1
  done
  echo "mariadb running on 127.0.0.1:$MYSQL_PORT (root, no password)"
}

stop_one() { # name
  local pidf="$RUN/$1.pid"
  if alive "$pidf"; then
    local pid; pid="$(cat "$pidf")"; kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    echo "$1 stopped"
  fi
  rm -f "$pidf"
}

case "${1:-}" in
  start) start_tansu; start_mariadb ;;
  stop) stop_one tansu; stop_one mariadb ;;
  status) for s in tansu mariadb; do alive "$RUN/$s.pid" && echo "$s: running" || echo "$s: stopped"; done ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
