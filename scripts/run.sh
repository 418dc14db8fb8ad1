#!/usr/bin/env bash
# Start the web server and the Django-Q cluster together; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
ADDR="${RUN_ADDR:-127.0.0.1:8000}"

# Each server runs in its own session, so Ctrl-C reaches only this script, which then stops
# both exactly once (Django-Q prints tracebacks when it receives two signals).
setsid "$PY" manage.py qcluster &
QCLUSTER=$!
setsid "$PY" manage.py runserver --noreload "$ADDR" &
WEB=$!

stop() {
  trap - INT TERM EXIT
  echo "Stopping web server and Django-Q cluster..."
  kill -TERM "$WEB" "$QCLUSTER" 2>/dev/null || true
  wait "$WEB" "$QCLUSTER" 2>/dev/null || true
  echo "Stopped."
  exit 0
}
trap stop INT TERM EXIT

echo "Dashboard: http://$ADDR/image-ranking/   Admin: http://$ADDR/admin/"
# Return as soon as either process ends, so a crash does not leave the other one running.
wait -n "$WEB" "$QCLUSTER"
