#!/usr/bin/env bash
# append.sh rand|v7 SECONDS CLIENTS: one-message chat_append into a random one of 1,000 rooms.
set -euo pipefail
V=$1; T=${2:-30}; C=${3:-4}
DIR=${PGB_DIR:-/tmp/pgbench-chat}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PSQL="psql -h 127.0.0.1 -p 55499 -U postgres -v ON_ERROR_STOP=1 -qtA"
DB=b_$V
$PSQL -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB TEMPLATE tmpl" >/dev/null
if [ "$V" = v7 ]; then
  node "$ROOT/bench/pg/migrate.mjs" "postgres://postgres@127.0.0.1:55499/$DB"
fi
$PSQL -d $DB -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
$PSQL -d $DB -c "SELECT count(*) FROM messages" >/dev/null
$PSQL -d $DB -c "CHECKPOINT" -c "SELECT pg_stat_reset_shared('wal')" >/dev/null
L0=$($PSQL -d $DB -c "SELECT pg_current_wal_lsn()")
C0=$(python3 "$HERE/pgcpu.py" "$DIR/data/postmaster.pid")
OUT=$(pgbench -h 127.0.0.1 -p 55499 -U postgres -n -M prepared -c "$C" -j 2 -T "$T" -f "$HERE/append.sql" $DB 2>&1)
C1=$(python3 "$HERE/pgcpu.py" "$DIR/data/postmaster.pid")
TX=$(echo "$OUT" | grep "number of transactions actually processed" | awk -F': ' '{print $2}' | cut -d/ -f1)
WAL=$($PSQL -d $DB -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$L0')")
FPI=$($PSQL -d $DB -c "SELECT wal_fpi FROM pg_stat_wal")
python3 -c "
tx=$TX; cpu=$C1-$C0
print(f'$V, {$C} clients, {$T} s: {tx} tx ({tx/$T:.0f}/s), Postgres CPU {cpu/tx*1e6:.0f} us/tx, WAL {$WAL/tx:.0f} B/tx, full-page images {$FPI/tx:.3f}/tx')"
