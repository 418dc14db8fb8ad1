#!/usr/bin/env bash
# Start the web server and the Django-Q cluster together; Ctrl-C stops both.
# Environment: RUN_ADDR (where the web server listens, default 127.0.0.1:8000; "PORT",
# "HOST:PORT" or "[IPv6]:PORT" as for runserver), START_TIMEOUT (seconds to wait for it to
# listen, default 60), STOP_TIMEOUT (see below).
# Development mode unless DJANGO_DEBUG says otherwise: DEBUG on, and the secret key the settings
# make once in var/secret-key, so the web server and the cluster sign with the same key.
set -euo pipefail
cd "$(dirname "$0")/.."
export DJANGO_DEBUG="${DJANGO_DEBUG:-1}"
PY=.venv/bin/python
ADDR="${RUN_ADDR:-127.0.0.1:8000}"
START_TIMEOUT="${START_TIMEOUT:-60}"
# A task may be waiting for the Commons rate limit; after this many seconds the cluster is
# killed instead (safe: the broker hands unfinished tasks out again, claims go stale).
STOP_TIMEOUT="${STOP_TIMEOUT:-20}"

case "$ADDR" in
  *:*) HOST="${ADDR%:*}" PORT="${ADDR##*:}" ;;
  *) HOST=127.0.0.1 PORT="$ADDR" ADDR="127.0.0.1:$ADDR" ;;
esac
HOST="${HOST#[}" HOST="${HOST%]}"
case "$HOST" in # where to knock to see whether the server listens
  0.0.0.0) PROBE=127.0.0.1 ;;
  ::) PROBE=::1 ;;
  *) PROBE="$HOST" ;;
esac

fail() {
  echo "Error: $*" >&2
  exit 1
}

# Before anything starts: is the address free? (The check binds as runserver does.)
if ! problem="$("$PY" - "$HOST" "$PORT" <<'EOF'
import socket, sys

host, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
with socket.socket(family, socket.SOCK_STREAM) as probe:
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((host, port))
    except OSError as exc:
        print(exc.strerror or exc)
        sys.exit(1)
EOF
)"; then
  fail "cannot serve on $ADDR: ${problem:-invalid address} (port $PORT)." \
    "Another app may be listening there: stop it, or choose another address, e.g." \
    "RUN_ADDR=127.0.0.1:$((PORT + 1)) make run"
fi

LOGIN="$("$PY" manage.py ensure_staff_user)" # printed below, once the dashboard answers

WEB="" QCLUSTER=""
stop() {
  local status="$1"
  trap - INT TERM EXIT
  echo "Stopping web server and Django-Q cluster..."
  [[ -n "$WEB$QCLUSTER" ]] && kill -TERM $WEB $QCLUSTER 2>/dev/null || true
  for _ in $(seq "$((STOP_TIMEOUT * 2))"); do
    [[ -n "$QCLUSTER" ]] && kill -0 "$QCLUSTER" 2>/dev/null || break
    sleep 0.5
  done
  if [[ -n "$QCLUSTER" ]] && kill -0 "$QCLUSTER" 2>/dev/null; then
    echo "Django-Q did not stop within ${STOP_TIMEOUT}s (a task waiting for the rate limit?);"
    echo "killing it. Its unfinished tasks run again at the next start."
    kill -KILL -- "-$QCLUSTER" 2>/dev/null || true
  fi
  wait $WEB $QCLUSTER 2>/dev/null || true
  echo "Stopped."
  exit "$status"
}
trap 'stop 0' INT TERM
trap 'stop $?' EXIT

# Each server runs in its own session, so Ctrl-C reaches only this script, which then stops
# both exactly once (Django-Q prints tracebacks when it receives two signals).
setsid "$PY" manage.py qcluster &
QCLUSTER=$!
setsid "$PY" manage.py runserver --noreload "$ADDR" &
WEB=$!

# The URL is printed only once the server listens. Should it fail to bind after all (another
# app took the port since the check), it exits and so does this script, with an error.
deadline=$((SECONDS + START_TIMEOUT))
until (exec 3<>"/dev/tcp/$PROBE/$PORT") 2>/dev/null; do
  kill -0 "$WEB" 2>/dev/null || fail "the web server stopped before it listened on $ADDR."
  kill -0 "$QCLUSTER" 2>/dev/null || fail "the Django-Q cluster stopped at start."
  ((SECONDS < deadline)) || fail "the web server did not listen on $ADDR within ${START_TIMEOUT}s."
  sleep 0.2
done
kill -0 "$WEB" 2>/dev/null || fail "the web server stopped before it listened on $ADDR."

echo "$LOGIN"
echo "Dashboard: http://$ADDR/image-ranking/   Admin: http://$ADDR/admin/"
# Return as soon as either process ends, so a crash does not leave the other one running.
status=0
wait -n "$WEB" "$QCLUSTER" || status=$?
fail "the web server or the Django-Q cluster stopped by itself (exit status $status)."
