#!/bin/sh
# Inside an image build: /opt/venv from a lock file, on Debian's Python, with uv from PyPI.
# Bytecode is compiled now, so a read-only root filesystem does not make every start compile
# torch in memory; uv never downloads a Python; uv itself does not stay in the image.
# BUILD_PACKAGEs (compilers for a lock's source-only packages) are installed for this step only:
# none of them may be a package the image keeps.
#   python-venv.sh LOCK [BUILD_PACKAGE...]
set -eu
lock=${1:?usage: python-venv.sh LOCK [BUILD_PACKAGE...]}
shift
[ $# -eq 0 ] || sh "$(dirname "$0")/debian-packages.sh" "$@"
export UV_COMPILE_BYTECODE=1 UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=copy UV_NO_PROGRESS=1
# `make images` lends the host's trust store (for a proxy that signs its own certificates) and
# the host's uv cache to this step (buildah --volume); other builders download every wheel.
if [ -s /run/berth-build/ca.crt ]; then export SSL_CERT_FILE=/run/berth-build/ca.crt PIP_CERT=/run/berth-build/ca.crt; fi
if [ -d /run/berth-build/uv ] && [ -n "$(ls -A /run/berth-build/uv)" ]; then export UV_CACHE_DIR=/run/berth-build/uv; else export UV_NO_CACHE=1; fi
python3.11 -m venv /opt/uv
/opt/uv/bin/pip install --quiet --no-cache-dir --disable-pip-version-check uv==0.13.9
# an image built on another that has /opt/venv (runtime_images/torch) adds to it
[ -x /opt/venv/bin/python ] || /opt/uv/bin/uv venv --python /usr/bin/python3.11 /opt/venv
/opt/uv/bin/uv pip sync --python /opt/venv/bin/python "$lock"
rm -rf /opt/uv
if [ $# -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get purge -y --auto-remove "$@"
  rm -rf /var/lib/apt/lists/* /var/cache/apt/*
fi
