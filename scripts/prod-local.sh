#!/usr/bin/env bash
# `make prod-local`: the production topology on this machine, in the foreground.
#
# Under var/prod-local/: a PostgreSQL cluster and a Redis server (Debian's
# packages, installed with apt-get when missing; both on 127.0.0.1 only),
# then the site under gunicorn with several workers, two task workers
# (task_worker) and the periodic scheduler. Ctrl-C (or SIGTERM) stops them all,
# the servers included; the data stays in var/prod-local/ for the next start.
#
# Environment (defaults): PORT (8000), PG_PORT (54330), REDIS_PORT (63790),
# WEB_CONCURRENCY (3 gunicorn workers), GUNICORN_THREADS (4), DEMO (1: the
# demo data and mailbox, so that one can log in; 0 needs EMAIL_URL),
# LOG_FORMAT (json), METRICS_ALLOWED_IPS (127.0.0.1,::1), PROD_LOCAL_DIR
# (var/prod-local). Unlike scripts/postgres-local.sh (test data, fsync off),
# this cluster keeps PostgreSQL's durable defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
PORT=${PORT:-8000}
PG_PORT=${PG_PORT:-54330}
REDIS_PORT=${REDIS_PORT:-63790}
DIR=${PROD_LOCAL_DIR:-var/prod-local}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd -P)

log() { printf 'prod-local: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    die "'$*' needs root (or sudo)"
  fi
}

pg_bindir() {
  local candidate
  candidate=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$candidate" ] && [ -x "$candidate/initdb" ] && echo "$candidate"
}

# --- Debian packages --------------------------------------------------------------------------
packages=()
pg_bindir >/dev/null || packages+=(postgresql)
command -v redis-server >/dev/null || packages+=(redis-server)
if [ ${#packages[@]} -gt 0 ]; then
  log "installing ${packages[*]} (apt-get)"
  # The packages would start their own system-wide servers (ports 5432 and
  # 6379): Debian's policy-rc.d convention keeps them stopped during the install.
  policy=/usr/sbin/policy-rc.d
  ours=""
  if [ ! -e "$policy" ]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    ours=1
    trap 'as_root rm -f "$policy"' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  install=(apt-get install -y -q --no-install-recommends "${packages[@]}")
  # A fresh machine has no package lists yet: update once, then try again.
  as_root "${install[@]}" >&2 || { as_root apt-get update -q >&2 && as_root "${install[@]}" >&2; } ||
    die "could not install ${packages[*]}"
  if [ -n "$ours" ]; then
    trap - EXIT
    as_root rm -f "$policy"
  fi
fi
PG_BIN=$(pg_bindir) || die "PostgreSQL server binaries not found"

# Run as root (a container, CI), the servers run as their own users, as
# PostgreSQL requires and as Debian runs Redis.
run_as() {
  local user=$1
  shift
  if [ "$(id -u)" -ne 0 ]; then
    "$@"
  else
    runuser -u "$user" -- "$@"
  fi
}
own() {
  local user=$1 path=$2
  if [ "$(id -u)" -eq 0 ]; then
    chown -R "$user": "$path"
    run_as "$user" test -x "$path" ||
      die "the $user user cannot reach $path: make its parent directories traversable (chmod o+x)"
  fi
  chmod 700 "$path"
}

# Generated once, kept under var/ (never committed).
secret() {
  local file="$DIR/$1"
  if [ ! -s "$file" ]; then
    (umask 077 && "$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(24))' >"$file")
  fi
  cat "$file"
}

# --- PostgreSQL -------------------------------------------------------------------------------
PG_DIR="$DIR/pg"
PG_PASSWORD=$(secret pg-password)
mkdir -p "$PG_DIR"
own postgres "$PG_DIR"
if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
  log "creating a PostgreSQL cluster in $PG_DIR/data"
  # Local connections go through a unix socket inside $PG_DIR (mode 700).
  (cd / && run_as postgres "$PG_BIN/initdb" --pgdata="$PG_DIR/data" --username=postgres \
    --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 \
    >"$PG_DIR/initdb.log" 2>&1) || {
    cat "$PG_DIR/initdb.log" >&2
    die "initdb failed"
  }
fi
pg_running() {
  (cd / && run_as postgres "$PG_BIN/pg_ctl" status --pgdata="$PG_DIR/data" >/dev/null 2>&1)
}
pg_running && die "a PostgreSQL server already runs in $PG_DIR (another make prod-local?)"
log "starting PostgreSQL on 127.0.0.1:$PG_PORT (log: $PG_DIR/postgres.log)"
(cd / && run_as postgres "$PG_BIN/pg_ctl" start --pgdata="$PG_DIR/data" --log="$PG_DIR/postgres.log" \
  --wait --timeout=60 --silent -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR") || {
  tail -n 20 "$PG_DIR/postgres.log" >&2 || true
  die "PostgreSQL did not start (port $PG_PORT in use?)"
}

pids=()
redis=""
stopped=""
stop() {
  trap - INT TERM EXIT
  stopped=1
  log "stopping"
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$redis" ]; then
    kill -TERM "$redis" 2>/dev/null || true
    wait "$redis" 2>/dev/null || true
  fi
  if pg_running; then
    (cd / && run_as postgres "$PG_BIN/pg_ctl" stop --pgdata="$PG_DIR/data" --mode=fast --wait \
      --timeout=60 --silent) || log "PostgreSQL did not stop cleanly"
  fi
  log "stopped"
}
trap stop INT TERM EXIT

# --- Redis ------------------------------------------------------------------------------------
REDIS_DIR="$DIR/redis"
REDIS_PASSWORD=$(secret redis-password)
mkdir -p "$REDIS_DIR"
redis_user=redis
id redis >/dev/null 2>&1 || redis_user=$(id -un)
# Cache and throttling counters only: nothing to persist. Every key has a
# lifetime; under memory pressure the closest to expiry go first. The
# password goes in a file (mode 600), not on a command line that `ps` shows.
(
  umask 077
  printf '%s\n' "bind 127.0.0.1" "port $REDIS_PORT" "protected-mode yes" "dir $REDIS_DIR" \
    'save ""' "appendonly no" "maxmemory 256mb" "maxmemory-policy volatile-ttl" \
    "requirepass $REDIS_PASSWORD" "logfile $REDIS_DIR/redis.log" "daemonize no" \
    >"$REDIS_DIR/redis.conf"
)
own "$redis_user" "$REDIS_DIR"
log "starting Redis on 127.0.0.1:$REDIS_PORT (log: $REDIS_DIR/redis.log)"
# `exec`: $! is then the server (or runuser, which passes signals on to it).
if [ "$(id -u)" -eq 0 ]; then
  (cd / && exec runuser -u "$redis_user" -- redis-server "$REDIS_DIR/redis.conf") &
else
  (cd / && exec redis-server "$REDIS_DIR/redis.conf") &
fi
redis=$!
for _ in $(seq 50); do
  REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
  kill -0 "$redis" 2>/dev/null || die "Redis did not start: $(tail -n 5 "$REDIS_DIR/redis.log")"
  sleep 0.1
done

# The role and the database (idempotent); the password follows the secret file.
(cd / && run_as postgres "$PG_BIN/psql" --no-psqlrc --quiet -v ON_ERROR_STOP=1 --host="$PG_DIR" \
  --port="$PG_PORT" --username=postgres --dbname=postgres >/dev/null) <<SQL
select 'create role portal login' where not exists (select from pg_roles where rolname = 'portal') \gexec
alter role portal password '$PG_PASSWORD';
select 'create database portal owner portal'
where not exists (select from pg_database where datname = 'portal') \gexec
SQL

# --- the app ----------------------------------------------------------------------------------
export DATABASE_URL="postgres://portal:$PG_PASSWORD@127.0.0.1:$PG_PORT/portal"
TOTP_ENCRYPTION_KEYS=${TOTP_ENCRYPTION_KEYS:-$(secret totp-encryption-key)}
export TOTP_ENCRYPTION_KEYS
export CACHE_URL="redis://:$REDIS_PASSWORD@127.0.0.1:$REDIS_PORT/0"
export DEMO=${DEMO:-1}
export LOG_FORMAT=${LOG_FORMAT:-json}
export METRICS_ALLOWED_IPS=${METRICS_ALLOWED_IPS:-127.0.0.1,::1}
export PROMETHEUS_MULTIPROC_DIR="$DIR/metrics"
export GUNICORN_BIND="127.0.0.1:$PORT"
export WEB_CONCURRENCY=${WEB_CONCURRENCY:-3}
rm -rf "$PROMETHEUS_MULTIPROC_DIR"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

"$BIN/python" manage.py migrate --noinput
"$BIN/python" manage.py collectstatic --noinput --verbosity 0
if [ "$DEMO" = "1" ]; then
  "$BIN/python" manage.py load_demo
fi

"$BIN/gunicorn" --config deploy/gunicorn.conf.py &
pids+=($!)
for _ in $(seq 150); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || die "gunicorn did not start"
  sleep 0.2
done
"$BIN/python" manage.py task_worker --interval 1 --worker-id prod-local-1 &
pids+=($!)
"$BIN/python" manage.py task_worker --interval 1 --worker-id prod-local-2 &
pids+=($!)
"$BIN/python" manage.py scheduler &
pids+=($!)

{
  echo
  echo "  Site:          http://127.0.0.1:$PORT/  (gunicorn, $WEB_CONCURRENCY workers)"
  echo "  Probes:        http://127.0.0.1:$PORT/healthz  http://127.0.0.1:$PORT/readyz"
  echo "  Metrics:       http://127.0.0.1:$PORT/metrics  (from $METRICS_ALLOWED_IPS)"
  echo "  PostgreSQL:    127.0.0.1:$PG_PORT, Redis: 127.0.0.1:$REDIS_PORT (data in $DIR)"
  echo "  Task workers:  2, and the periodic scheduler"
  [ "$DEMO" = "1" ] && echo "  Demo mailbox:  http://127.0.0.1:$PORT/demo/boite-mail/"
  echo "  Press Ctrl-C to stop everything."
  echo
} >&2

# Any process ending on its own ends the whole: in production a supervisor
# would restart it; here it means something is wrong.
status=0
wait -n "${pids[@]}" "$redis" || status=$?
[ -n "$stopped" ] || log "a process ended (status $status): stopping the others"
exit "$status"
