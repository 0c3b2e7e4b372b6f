#!/bin/sh
# Quick start: set up .venv with fs-guard and replay its bundled attack trace on the
# built-in defaults: what fs-guard and fail2ban would have done to a day of attacks.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
.venv/bin/fs-guard demo
