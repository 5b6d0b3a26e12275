#!/usr/bin/env bash
# A throwaway PostgreSQL cluster in a directory, for the test suite.
#
#   scripts/postgres-local.sh start DIR PORT   # create if needed, start, print DATABASE_URL
#   scripts/postgres-local.sh stop DIR         # stop (the data stays in DIR)
#   scripts/postgres-local.sh status DIR       # exit 0 if running
#
# The cluster listens on 127.0.0.1:PORT only, with its unix socket in DIR,
# and has a role `portal` (password `portal`, CREATEDB so that pytest-django
# can create `test_portal`) owning a database `portal`. Only the URL goes to
# stdout, so `DATABASE_URL=$(scripts/postgres-local.sh start var/pg 54329)`
# works; progress goes to stderr. Run as root (CI), the cluster belongs to the
# `postgres` user, since PostgreSQL refuses to run as root.
#
# PG_LOCALE (default C.UTF-8) picks the cluster's locale at creation.
# Durability is traded for speed (fsync=off): this is for test data only;
# after a machine crash, delete DIR.
set -euo pipefail

ROLE=portal
PASSWORD=portal
DATABASE=portal

log() { printf 'postgres-local: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

usage() {
  sed -n '4,6s/^# \{0,1\}//p' "$0" >&2
  exit 2
}

# The directory holding initdb/pg_ctl: on PATH, else the newest Debian one.
pg_bindir() {
  local initdb candidate
  if initdb=$(command -v initdb 2>/dev/null); then
    dirname "$(readlink -f "$initdb")"
    return
  fi
  candidate=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$candidate" ] && [ -x "$candidate/initdb" ]; then
    echo "$candidate"
    return
  fi
  die "PostgreSQL server binaries not found (Debian: apt-get install postgresql)"
}

# Run a command as the cluster's owner: ourselves, or `postgres` when root.
as_owner() {
  if [ "$(id -u)" -ne 0 ]; then
    "$@"
  elif command -v runuser >/dev/null; then
    runuser -u postgres -- "$@"
  else
    su -s /bin/bash -c "$(printf '%q ' "$@")" postgres
  fi
}

absolute_dir() {
  mkdir -p "$1"
  (cd "$1" && pwd -P)
}

is_running() {
  local dir=$1 bin
  [ -f "$dir/data/PG_VERSION" ] || return 1
  bin=$(pg_bindir)
  (cd / && as_owner "$bin/pg_ctl" status -D "$dir/data" >/dev/null 2>&1)
}

cmd_start() {
  [ $# -eq 2 ] || usage
  local dir port bin
  dir=$(absolute_dir "$1")
  port=$2
  case $port in '' | *[!0-9]*) die "PORT must be a number, got '$port'" ;; esac
  # A unix socket path is limited to 107 bytes.
  [ ${#dir} -le 90 ] || die "$dir is too long a path for the unix socket; pick a shorter DIR"
  bin=$(pg_bindir)
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' user to own the cluster"
    chown postgres: "$dir"
    as_owner test -x "$dir" ||
      die "the postgres user cannot reach $dir: make its parent directories traversable (chmod o+x)"
  fi
  chmod 700 "$dir"
  # The cluster owner may not be allowed into the caller's working directory.
  cd /

  if [ ! -f "$dir/data/PG_VERSION" ]; then
    log "creating a cluster in $dir/data ($("$bin/postgres" --version))"
    as_owner "$bin/initdb" --pgdata="$dir/data" --username=postgres --encoding=UTF8 \
      --locale="${PG_LOCALE:-C.UTF-8}" --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 ||
      {
        cat "$dir/initdb.log" >&2
        die "initdb failed"
      }
  fi

  if is_running "$dir"; then
    log "already running in $dir"
  else
    log "starting on 127.0.0.1:$port (log: $dir/postgres.log)"
    as_owner "$bin/pg_ctl" start --pgdata="$dir/data" --log="$dir/postgres.log" --wait \
      --timeout=60 --silent \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off \
          -c synchronous_commit=off -c full_page_writes=off" ||
      {
        tail -n 20 "$dir/postgres.log" >&2 || true
        die "PostgreSQL did not start (port $port already in use?)"
      }
  fi

  local psql=("$bin/psql" --no-psqlrc --quiet -v ON_ERROR_STOP=1 --host="$dir" --port="$port"
    --username=postgres --dbname=postgres)
  as_owner "${psql[@]}" -c "select 1" >/dev/null 2>&1 ||
    die "a cluster runs in $dir but not on port $port (stop it first: $0 stop $1)"
  as_owner "${psql[@]}" <<SQL >&2
select 'create role $ROLE login createdb password ''$PASSWORD'''
where not exists (select from pg_roles where rolname = '$ROLE') \gexec
select 'create database $DATABASE owner $ROLE'
where not exists (select from pg_database where datname = '$DATABASE') \gexec
SQL
  echo "postgres://$ROLE:$PASSWORD@127.0.0.1:$port/$DATABASE"
}

cmd_stop() {
  [ $# -eq 1 ] || usage
  local dir bin
  [ -d "$1" ] || {
    log "nothing in $1"
    return 0
  }
  dir=$(absolute_dir "$1")
  cd /
  if is_running "$dir"; then
    bin=$(pg_bindir)
    log "stopping the cluster in $dir"
    as_owner "$bin/pg_ctl" stop --pgdata="$dir/data" --mode=fast --wait --timeout=60 --silent
  else
    log "not running in $dir"
  fi
}

cmd_status() {
  [ $# -eq 1 ] || usage
  [ -d "$1" ] || return 1
  is_running "$(absolute_dir "$1")"
}

[ $# -ge 1 ] || usage
command=$1
shift
case $command in
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  status) cmd_status "$@" ;;
  *) usage ;;
esac
