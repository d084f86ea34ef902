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
# The unit's SupplementaryGroups=gpio i2c (GPIO and I2C sensors) needs the
# groups to exist: Raspberry Pi OS has them, plain Debian does not.
if ! getent group gpio >/dev/null; then
  groupadd --system gpio
fi
if ! getent group i2c >/dev/null; then
  groupadd --system i2c
fi
exit 0
