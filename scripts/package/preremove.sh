#!/bin/sh
# Runs before dpkg removes Spool (not on upgrade): stop the service, which
# flushes the log. Data in /var/lib/spool is kept, even on purge; delete
# it by hand when it is no longer wanted.
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl disable --now spool >/dev/null 2>&1 || true
fi
exit 0
