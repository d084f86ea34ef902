#!/bin/sh
# Runs before dpkg unpacks Spool: the spool system user and group must
# exist first, since /etc/spool/spool.yaml is owned by group spool.
set -e
if ! getent group spool >/dev/null; then
  groupadd --system spool
fi
if ! getent passwd spool >/dev/null; then
  useradd --system --gid spool --home-dir /var/lib/spool --no-create-home \
    --shell /usr/sbin/nologin --comment "Spool edge event broker" spool
fi
# The unit's SupplementaryGroups=gpio (GPIO sensors) needs the group to
# exist: Raspberry Pi OS has it, plain Debian does not.
if ! getent group gpio >/dev/null; then
  groupadd --system gpio
fi
exit 0
