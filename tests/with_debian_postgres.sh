#!/usr/bin/env bash
# Run a command against a throwaway server of Debian's PostgreSQL VERSION (package postgresql-VERSION),
# with PGCTI_TEST_DSN pointing at it. Usage: tests/with_debian_postgres.sh 15 make test
set -euo pipefail
version=$1; shift
bin=/usr/lib/postgresql/$version/bin
if [ ! -x "$bin/postgres" ]; then
    echo "PostgreSQL $version server binaries not found in $bin; install them: apt-get install postgresql-$version" >&2
    exit 2
fi
dir=$(mktemp -d /tmp/pgcti-pg$version.XXXXXX)
chmod 755 "$dir"
as_user=()
if [ "$(id -u)" = 0 ]; then
    # pg_ctl refuses to run as root: run the server as an ordinary system user.
    user=postgres; id "$user" >/dev/null 2>&1 || { user=pgcti_ci; id "$user" >/dev/null 2>&1 || useradd -M -s /usr/sbin/nologin "$user"; }
    chown "$user" "$dir"
    as_user=(runuser -u "$user" --)
fi
cleanup() { "${as_user[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
"${as_user[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 >/dev/null
"${as_user[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-c listen_addresses='' -k $dir -c fsync=on" start >/dev/null
echo "==> PostgreSQL $version running on socket $dir"
PGCTI_TEST_DSN="host=$dir port=5432 user=postgres dbname=postgres" "$@"
