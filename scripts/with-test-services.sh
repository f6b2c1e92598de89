#!/usr/bin/env bash
# Runs "$@" with throwaway services for the tests, and always stops them:
#  - a PostgreSQL 15 cluster in a temp dir on a free loopback port (initdb/pg_ctl
#    refuse root, so they run as the `postgres` user); exports TEST_PG_URL
#    (e.g. postgresql://postgres@127.0.0.1:PORT/postgres, trust auth, loopback only)
#  - nats-server with JetStream, if installed; exports TEST_NATS_URL
# Set SKIP_PG=1 / SKIP_NATS=1 to leave one out.
set -euo pipefail

free_port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
TMP=$(mktemp -d /tmp/test-services.XXXXXX)
chmod 755 "$TMP"
PG_PID_STOP=""
cleanup() {
  set +e
  if [[ -n "$PG_PID_STOP" ]]; then $PG_PID_STOP >/dev/null 2>&1; fi
  if [[ -n "${NATS_PID:-}" ]]; then kill "$NATS_PID" 2>/dev/null; wait "$NATS_PID" 2>/dev/null; fi
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

if [[ "${SKIP_PG:-0}" != "1" ]]; then
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  if [[ -z "$PGBIN" ]]; then echo "with-test-services: PostgreSQL server binaries not found" >&2; exit 1; fi
  PGPORT=$(free_port)
  mkdir -p "$TMP/pg"
  RUNAS=()
  if [[ $(id -u) -eq 0 ]]; then chown postgres:postgres "$TMP/pg"; RUNAS=(runuser -u postgres --); fi
  "${RUNAS[@]}" "$PGBIN/initdb" -D "$TMP/pg/data" -U postgres -A trust -E UTF8 --no-locale >"$TMP/initdb.log" 2>&1 \
    || { cat "$TMP/initdb.log" >&2; exit 1; }
  "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$TMP/pg/data" -l "$TMP/pg/server.log" -w -t 30 \
    -o "-p $PGPORT -k $TMP/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
  PG_PID_STOP="${RUNAS[*]} $PGBIN/pg_ctl -D $TMP/pg/data -m immediate -w stop"
  export TEST_PG_URL="postgresql://postgres@127.0.0.1:${PGPORT}/postgres"
  echo "with-test-services: PostgreSQL on 127.0.0.1:$PGPORT"
fi

if [[ "${SKIP_NATS:-0}" != "1" ]] && command -v nats-server >/dev/null; then
  NPORT=$(free_port)
  nats-server -a 127.0.0.1 -p "$NPORT" -js -sd "$TMP/nats" >"$TMP/nats.log" 2>&1 &
  NATS_PID=$!
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$NPORT) 2>/dev/null && break; sleep 0.1; done
  export TEST_NATS_URL="nats://127.0.0.1:${NPORT}"
  echo "with-test-services: nats-server on 127.0.0.1:$NPORT"
fi

"$@"
