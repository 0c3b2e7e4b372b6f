#!/bin/sh
# Quick start: set up .venv with fs-guard and run it on its bundled defaults.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
.venv/bin/fs-guard check-config
.venv/bin/fs-guard test 0044123456789 --ip 203.0.113.7 --user-agent friendly-scanner || true
