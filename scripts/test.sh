#!/bin/sh
# Run the whole test suite: sets up .venv, installs fail2ban from Debian's packages
# when it is missing and we are root, then runs pytest. Extra arguments go to pytest.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
if ! command -v fail2ban-regex >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "test: installing fail2ban from Debian's packages" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fail2ban >/dev/null
    else
        echo "test: fail2ban is not installed; its tests will skip (set FS_GUARD_REQUIRE_FAIL2BAN=1 to fail instead)" >&2
    fi
fi
exec .venv/bin/python -m pytest "$@"
