#!/usr/bin/env bash
# Make a PostgreSQL server answer on 127.0.0.1:5432 with a `voe` superuser
# (password `voe`), installing Debian's package when none is there. Used by
# .ci/run and by the README's test command; idempotent.
set -euo pipefail
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  :
else
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
  if ! pg_lsclusters -h | grep -q "^$ver main"; then
    pg_createcluster "$ver" main >/dev/null
  fi
  pg_ctlcluster "$ver" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
fi
su postgres -c "psql -q -h 127.0.0.1 -p 5432 -c \"DO \\\$\\\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='voe') THEN CREATE ROLE voe LOGIN SUPERUSER PASSWORD 'voe'; END IF; END \\\$\\\$;\"" 2>/dev/null \
  || su postgres -c "psql -q -c \"DO \\\$\\\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='voe') THEN CREATE ROLE voe LOGIN SUPERUSER PASSWORD 'voe'; END IF; END \\\$\\\$;\""
echo "postgresql ready on 127.0.0.1:5432 (user voe)"
