#!/bin/sh
# Each container writes its metric files in its own subdirectory of the shared
# metrics volume (process ids repeat from one container to the next), and the
# web's /metrics reads them all (METRICS_COLLECT_DIR, docs/operations.md).
set -eu
if [ -n "${METRICS_COLLECT_DIR:-}" ]; then
  PROMETHEUS_MULTIPROC_DIR="$METRICS_COLLECT_DIR/$(hostname)"
  export PROMETHEUS_MULTIPROC_DIR
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
  # Gunicorn empties its own directory at start; other processes do it here.
  case "${1:-}" in gunicorn) ;; *) rm -f "$PROMETHEUS_MULTIPROC_DIR"/*.db ;; esac
fi
exec "$@"
