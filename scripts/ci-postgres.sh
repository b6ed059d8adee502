#!/bin/sh
# Install the PostgreSQL server binaries from Debian so the store tests also run
# against PostgreSQL. The tests start their own throwaway server (initdb + pg_ctl in a
# temp dir, 127.0.0.1, a free port, as the 'postgres' user when run as root); nothing
# is started here and the distribution's default cluster is not used.
#
#   scripts/ci-postgres.sh && .venv/bin/pytest tests/store tests/runtime
#
# To use an existing server instead (a CI service container), skip this script and set
#   PERSONAE_TEST_POSTGRES_URL=postgresql://USER:PASSWORD@HOST:PORT/postgres
# (a role allowed to CREATE DATABASE).
set -eu

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    # the package may create and start Debian's default cluster; the tests never use it
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        postgresql >/dev/null
fi

BINDIR=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
"$BINDIR/initdb" --version
"$BINDIR/pg_ctl" --version
echo "PostgreSQL binaries in $BINDIR (the tests find them there; or set PERSONAE_PG_BINDIR)"
