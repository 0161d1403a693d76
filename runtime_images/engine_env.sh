#!/usr/bin/env bash
# Builds an engine's Python environment from its image lock file, once per lock, outside the tree.
#   runtime_images/engine_env.sh ENGINE     -> prints the environment's python
# The same lock (runtime_images/ENGINE/requirements.lock) is what the ENGINE image installs.
set -euo pipefail
engine=${1:?usage: engine_env.sh vllm|nemo-asr|pyannote}
here=$(cd "$(dirname "$0")" && pwd)
lock="$here/$engine/requirements.lock"
[ -f "$lock" ] || { echo "no lock file for engine '$engine' ($lock)" >&2; exit 2; }
digest=$(sha256sum "$lock" | cut -c1-12)
env_dir="${BERTH_CACHE_DIR:-$HOME/.cache/berth}/envs/$engine-$digest"
if [ ! -f "$env_dir/.done" ]; then
  start=$(date +%s)
  echo "building the $engine environment in $env_dir (once per lock file)" >&2
  # a venv's scripts hold its path, so it is built under its final name; .done marks it whole
  rm -rf "$env_dir"
  uv venv --quiet --python 3.11 "$env_dir" >&2
  uv pip sync --quiet --python "$env_dir/bin/python" "$lock" >&2
  touch "$env_dir/.done"
  echo "$engine environment ready in $(( $(date +%s) - start )) s" >&2
fi
echo "$env_dir/bin/python"
