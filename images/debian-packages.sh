#!/bin/sh
# Inside an image build: Python from Debian (3.11, venv), what the image adds, and the user
# that runs it (65532, whose home is /tmp). Installs only what the base does not already have,
# so a base made by mmdebstrap with Python needs no apt mirror for the operator's image.
#   debian-packages.sh [DEBIAN_PACKAGE...]
set -eu
packages="python3.11 python3-venv ca-certificates passwd $*"
missing=""
for package in $packages; do
  dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null | grep -qx installed \
    || missing="$missing $package"
done
if [ -n "$missing" ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
  rm -rf /var/lib/apt/lists/* /var/cache/apt/*
fi
if ! getent passwd berth >/dev/null; then
  groupadd --system --gid 65532 berth
  useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin berth
fi
