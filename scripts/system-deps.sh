#!/usr/bin/env bash
# Installs the Debian packages the full test suite uses, only when they are missing:
# a PostgreSQL server (integration tests start their own throw-away cluster, see
# tests/support/pg.py), Chromium (dashboard tests drive it headless through Playwright) and
# a Java runtime (the Spark engine's tests run PySpark locally and on a standalone cluster).
set -euo pipefail
need=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ] || [ ! -x "$pg_bin/postgres" ] || [ ! -x "$pg_bin/pg_ctl" ]; then
  need+=(postgresql)
fi
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  SUDO=(sudo)
else
  SUDO=()
fi
echo "installing Debian packages: ${need[*]}"
if [[ " ${need[*]} " == *" postgresql "* ]]; then
  # The tests start their own cluster: don't let the package create and start "main".
  "${SUDO[@]}" mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" |
    "${SUDO[@]}" tee /etc/postgresql-common/createcluster.d/mqlengine-tests.conf >/dev/null
fi
# sudo drops the environment: pass DEBIAN_FRONTEND explicitly so apt never prompts.
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
