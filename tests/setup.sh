#!/bin/sh
# What the test suite needs, on a fresh machine: hog itself with its `test` and `ray`
# extras, and Debian's chromium for the report's browser tests (installed as root
# where apt-get exists; elsewhere those tests are skipped and say why).
set -e
cd "$(dirname "$0")/.."
pip install -q -e '.[test,ray]'
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1
then
    apt-get install -y -q chromium >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
        || echo "tests/setup.sh: could not install chromium; the report's browser tests will be skipped" >&2
fi
