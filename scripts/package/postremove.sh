#!/bin/sh
# Runs after dpkg removed Spool: systemd forgets the unit.
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null || true
fi
exit 0
