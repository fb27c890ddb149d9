#!/usr/bin/env bash
# One command from a fresh machine to a result: installs everything, builds
# weir, starts private Tansu and MariaDB on loopback, loads 200,000 sample
# events, runs examples/user-spend.yaml to completion and prints the table.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
echo "[demo] building weir (release; the first build takes several minutes)"
swift build -c release --product weir 2>&1 | tail -1
WEIR="$(swift build -c release --show-bin-path)/weir"
bash scripts/servers.sh start
MYSQL=(mariadb --no-defaults -uroot -h127.0.0.1 -P"${WEIR_MYSQL_PORT:-13306}")
"${MYSQL[@]}" < examples/user-spend.sql
"$WEIR" produce --bootstrap 127.0.0.1:19092 --topic demo-events --partitions 4 --recreate --count 200000 --seed 7
"$WEIR" validate examples/user-spend.yaml
"$WEIR" run examples/user-spend.yaml --until-idle 2
echo "[demo] analytics.user_spend (first 10 of $("${MYSQL[@]}" -N -e 'select count(*) from analytics.user_spend') rows):"
"${MYSQL[@]}" -t -e "select * from analytics.user_spend order by window_start, user_id limit 10"
echo "[demo] done. Stop the servers with: scripts/servers.sh stop"
