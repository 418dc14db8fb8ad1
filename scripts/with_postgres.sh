#!/usr/bin/env bash
# Run CMD with a throwaway PostgreSQL server on 127.0.0.1 and TEST_POSTGRES_URL pointing to it.
#
#   scripts/with_postgres.sh .venv/bin/python -m pytest
#
# Why: the shared rate limiter must be correct on PostgreSQL too (row locks), so `make test`
# runs those tests against a real server. The cluster lives in a temporary directory, listens
# on a free port of 127.0.0.1 only (trust auth, nothing else can reach it), and is stopped and
# deleted when CMD ends; CMD's exit code is returned. As root, the server runs as the
# `postgres` OS user (PostgreSQL refuses to run as root). Without PostgreSQL binaries CMD runs
# alone and the @pytest.mark.postgres tests skip.
set -uo pipefail

if [ $# -eq 0 ]; then
  echo "usage: $0 CMD [ARGS...]" >&2
  exit 2
fi

bindir=""
for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
  if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then bindir="$dir"; break; fi
done
if [ -z "$bindir" ] && command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
  bindir="$(dirname "$(command -v initdb)")"
fi
if [ -z "$bindir" ]; then
  echo "with_postgres: no PostgreSQL binaries found; running without PostgreSQL" >&2
  exec "$@"
fi

as_db_user=()
if [ "$(id -u)" -eq 0 ]; then
  as_db_user=(runuser -u postgres --)
fi

tmp="$(mktemp -d /tmp/pg-test.XXXXXX)"
chmod 755 "$tmp"
mkdir "$tmp/data" "$tmp/sock"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$tmp/data" "$tmp/sock"

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

cleanup() {
  "${as_db_user[@]}" "$bindir/pg_ctl" -D "$tmp/data" -m immediate -w stop >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! "${as_db_user[@]}" "$bindir/initdb" -D "$tmp/data" -U postgres --auth=trust \
  --encoding=UTF8 --no-sync >"$tmp/initdb.log" 2>&1; then
  echo "with_postgres: initdb failed:" >&2
  cat "$tmp/initdb.log" >&2
  exit 1
fi
if ! "${as_db_user[@]}" "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/data/server.log" -w -t 30 \
  -o "-h 127.0.0.1 -p $port -k $tmp/sock -F -c max_connections=100" start >/dev/null; then
  echo "with_postgres: server did not start:" >&2
  cat "$tmp/data/server.log" >&2
  exit 1
fi

export TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
echo "with_postgres: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
"$@"
status=$?
exit $status
