#!/bin/sh
# Run the whole test suite: sets up .venv, installs fail2ban, redis-server, chromium (the HTML
# replay report is opened in it) and prometheus from Debian's packages when they are missing and
# we are root, then runs pytest. Extra arguments go to pytest.
# The tests start their own private redis-server and prometheus; no such service is needed or touched.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
# need COMMAND PACKAGE REQUIRE_VARIABLE: install Debian's PACKAGE when COMMAND is missing
need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "test: installing $2 from Debian's packages" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
    else
        echo "test: $2 is not installed; its tests will skip (set $3=1 to fail instead)" >&2
    fi
}
need fail2ban-regex fail2ban FS_GUARD_REQUIRE_FAIL2BAN
need redis-server redis-server FS_GUARD_REQUIRE_REDIS
need gcc gcc FS_GUARD_REQUIRE_GCC    # builds an ELF linked against libpython, as mod_python3.so is
# ... against the shared libpython of the tests' Python (Debian's python3 comes without it)
version=$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
libpython=$(.venv/bin/python -c 'import os, sysconfig as s; print(os.path.join(s.get_config_var("LIBDIR") or "", s.get_config_var("INSTSONAME") or "none"))')
if [ ! -e "$libpython" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test: installing libpython$version from Debian's packages" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "libpython$version" >/dev/null || true
fi
need chromium chromium FS_GUARD_REQUIRE_CHROMIUM
need prometheus prometheus FS_GUARD_REQUIRE_PROMETHEUS
exec .venv/bin/python -m pytest "$@"
