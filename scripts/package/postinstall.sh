#!/bin/sh
# Runs after dpkg unpacked Spool: the data directory, owned by spool, and
# systemd told about the unit. The service is not enabled here: configure
# /etc/spool/spool.yaml, then `systemctl enable --now spool`.
set -e
install -d -o spool -g spool -m 0750 /var/lib/spool
# Where dpkg could not give the config its group (no such group while
# unpacking), fix it so that the service can read it. An administrator may
# have deleted the conffile, which dpkg then leaves deleted on upgrade:
# there is nothing to fix then.
if group="$(stat -c %G /etc/spool/spool.yaml 2>/dev/null)" && [ "$group" != spool ]; then
  chgrp spool /etc/spool/spool.yaml
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null || true
  # An upgrade restarts a running Spool (it drains and flushes on SIGTERM).
  if systemctl is-active --quiet spool; then
    systemctl restart spool || true
  fi
fi
exit 0
