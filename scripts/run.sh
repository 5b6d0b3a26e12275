#!/usr/bin/env bash
# `make run`: migrate, load the demo data, then serve the site and run the
# task worker in the foreground; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
PORT=${PORT:-8000}
DEMO=${DEMO:-1}
export DEMO

"$BIN/python" manage.py migrate --noinput
"$BIN/python" manage.py collectstatic --noinput --verbosity 0
if [ "$DEMO" = "1" ]; then
  "$BIN/python" manage.py load_demo
fi

"$BIN/python" manage.py task_worker --interval 0.5 &
worker=$!
"$BIN/gunicorn" config.wsgi:application --bind "127.0.0.1:$PORT" --workers 1 --threads 8 \
  --error-logfile - &  # access lines come from the app, secrets masked
web=$!

stop() {
  trap - INT TERM
  kill -INT "$worker" 2>/dev/null || true
  kill -TERM "$web" 2>/dev/null || true
  wait "$web" "$worker" 2>/dev/null || true
}
trap stop INT TERM EXIT

echo
echo "  Site:          http://127.0.0.1:$PORT/"
[ "$DEMO" = "1" ] && echo "  Demo mailbox:  http://127.0.0.1:$PORT/demo/boite-mail/"
echo "  Press Ctrl-C to stop the web server and the task worker."
echo
wait -n "$web" "$worker"
