#!/bin/sh
# Quick start: set up .venv with fs-guard and replay its bundled attack trace (a day of
# attacks and a stolen password) on its demo configuration: what fs-guard, its fraud limits
# and fail2ban would have done.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
.venv/bin/fs-guard demo
