#!/usr/bin/env bash
# The full suite: lint, type check, then every test (unit, integration incl. PostgreSQL, browser).
# pytest's exit code 5 ("no tests collected") is a failure here, never a silent success.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
$BIN/ruff check src tests bench || exit 1
$BIN/ruff format --check src tests bench || exit 1
$BIN/mypy || exit 1
$BIN/lint-imports --no-cache || exit 1
$BIN/pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "pytest collected no tests: treating as failure" >&2
  exit 1
fi
exit $rc
