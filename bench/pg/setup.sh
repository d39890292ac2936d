#!/usr/bin/env bash
# A private PostgreSQL 15 for bench/pg (see README.md), and a template database "tmpl": every
# migration up to the one before TimeOrderedMessageIds, then 2,000,000 messages in 1,000 rooms.
set -euo pipefail
DIR=${PGB_DIR:-/tmp/pgbench-chat}
B=/usr/lib/postgresql/15/bin
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$DIR" && chown postgres "$DIR"
if [ ! -d "$DIR/data" ]; then
  runuser -u postgres -- "$B/initdb" -D "$DIR/data" -U postgres -A trust >/dev/null
  cat >> "$DIR/data/postgresql.conf" <<CONF
port=55499
listen_addresses='127.0.0.1'
unix_socket_directories='$DIR'
shared_buffers=128MB
shared_preload_libraries='pg_stat_statements'
max_wal_size=4GB
checkpoint_timeout=30min
CONF
fi
runuser -u postgres -- "$B/pg_ctl" -D "$DIR/data" -l "$DIR/pg.log" -w start >/dev/null || true
PSQL="psql -h 127.0.0.1 -p 55499 -U postgres -v ON_ERROR_STOP=1 -q"
$PSQL -c "DROP DATABASE IF EXISTS tmpl" -c "CREATE DATABASE tmpl"
node "$ROOT/bench/pg/migrate.mjs" postgres://postgres@127.0.0.1:55499/tmpl --before TimeOrderedMessageIds
$PSQL -d tmpl <<'SQL'
INSERT INTO rooms (id, last_seq, last_mod_seq) SELECT 'room' || r, 2000, 2000 FROM generate_series(1, 1000) r;
INSERT INTO messages (id, room_id, seq, mod_seq, sender_id, body, created_at)
  SELECT gen_random_uuid(), 'room' || r, s, s, 'u' || (s % 50), 'a message body of some typical length ' || s, now() - interval '1 day'
  FROM generate_series(1, 1000) r, generate_series(1, 2000) s;
VACUUM ANALYZE;
SQL
echo "template ready: $($PSQL -tA -d tmpl -c "SELECT pg_size_pretty(pg_total_relation_size('messages'))") of messages"
