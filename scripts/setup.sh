#!/bin/sh
# Create .venv with fs-guard installed (editable, with the test tools, redis-py, plotly and prometheus_client). Safe to re-run.
# On a fresh Debian machine run as root it first installs python3-venv if missing.
set -eu
cd "$(dirname "$0")/.."
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    else
        echo "setup: python3 -m venv is missing: install python3-venv (apt-get install python3-venv)" >&2
        exit 1
    fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,cluster,report,metrics]'
