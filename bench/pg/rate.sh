#!/usr/bin/env bash
# rate.sh RATE SECONDS: one-message chat_append into a random one of 1,000 empty rooms from one
# client, at RATE transactions/s (0: as fast as it goes), and the Postgres CPU per transaction.
# It shows what a transaction costs at the rates a chat deployment sees, not only flat out. Runs on
# the private cluster of setup.sh (PGB_PORT, PGB_DIR); creates and migrates database "rate" once.
set -euo pipefail
R=$1; T=${2:-20}
DIR=${PGB_DIR:-/tmp/pgbench-chat}
PORT=${PGB_PORT:-55499}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PSQL="psql -h 127.0.0.1 -p $PORT -U postgres -v ON_ERROR_STOP=1 -qtA"
if [ -z "$($PSQL -c "SELECT 1 FROM pg_database WHERE datname = 'rate'")" ]; then
  $PSQL -c "CREATE DATABASE rate" >/dev/null
  node "$ROOT/bench/pg/migrate.mjs" "postgres://postgres@127.0.0.1:$PORT/rate"
  $PSQL -d rate -c "INSERT INTO rooms (id, last_seq, last_mod_seq) SELECT 'room' || r, 0, 0 FROM generate_series(1, 1000) r" -c "VACUUM ANALYZE" >/dev/null
fi
if [ "$R" = 0 ]; then LIMIT=(); else LIMIT=(-R "$R"); fi
C0=$(python3 "$HERE/pgcpu.py" "$DIR/data/postmaster.pid")
OUT=$(pgbench -h 127.0.0.1 -p "$PORT" -U postgres -n -M prepared -c 1 -j 1 "${LIMIT[@]}" -T "$T" -f "$HERE/append.sql" rate 2>&1)
C1=$(python3 "$HERE/pgcpu.py" "$DIR/data/postmaster.pid")
TX=$(echo "$OUT" | grep "number of transactions actually processed" | awk -F': ' '{print $2}' | cut -d/ -f1)
python3 -c "
tx=$TX; cpu=$C1-$C0
print(f'rate $R, 1 client, $T s: {tx} tx ({tx/$T:.0f}/s), Postgres CPU {cpu/tx*1e6:.0f} us/tx')"
