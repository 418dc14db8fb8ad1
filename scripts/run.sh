#!/usr/bin/env bash
# Start the web server and the Django-Q cluster together; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
ADDR="${RUN_ADDR:-127.0.0.1:8000}"
# A task may be waiting for the Commons rate limit; after this many seconds the cluster is
# killed instead (safe: the broker hands unfinished tasks out again, claims go stale).
STOP_TIMEOUT="${STOP_TIMEOUT:-20}"

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
  for _ in $(seq "$((STOP_TIMEOUT * 2))"); do
    kill -0 "$QCLUSTER" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$QCLUSTER" 2>/dev/null; then
    echo "Django-Q did not stop within ${STOP_TIMEOUT}s (a task waiting for the rate limit?);"
    echo "killing it. Its unfinished tasks run again at the next start."
    kill -KILL -- "-$QCLUSTER" 2>/dev/null || true
  fi
  wait "$WEB" "$QCLUSTER" 2>/dev/null || true
  echo "Stopped."
  exit 0
}
trap stop INT TERM EXIT

echo "Dashboard: http://$ADDR/image-ranking/   Admin: http://$ADDR/admin/"
# Return as soon as either process ends, so a crash does not leave the other one running.
wait -n "$WEB" "$QCLUSTER"
