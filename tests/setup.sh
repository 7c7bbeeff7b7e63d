#!/bin/sh
# What the test suite needs, on a fresh machine: hog itself (gpu-hog) with its `test`
# extra; then its `ray` extra, where Ray can be installed (elsewhere the Ray tests are
# skipped and say why); and Debian's chromium for the report's browser tests (installed
# as root where apt-get exists; elsewhere those tests are skipped and say why).
set -e
cd "$(dirname "$0")/.."
pip install -q -e '.[test]'
pip install -q -e '.[ray]' \
    || echo "tests/setup.sh: could not install the ray extra (Ray for this Python and machine);" \
            "the Ray tests will be skipped" >&2
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1
then
    apt-get install -y -q chromium >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
        || echo "tests/setup.sh: could not install chromium; the report's browser tests will be skipped" >&2
fi
