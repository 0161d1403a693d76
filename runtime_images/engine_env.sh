#!/usr/bin/env bash
# Builds an engine's Python environment from its lock file, once per lock, outside the tree.
#   runtime_images/engine_env.sh ENGINE[/VARIANT]    -> prints the environment's python
# runtime_images/ENGINE/requirements.lock is what the ENGINE image installs; a variant
# (vllm/cpu: vLLM's CPU build for the tests) has its own lock in runtime_images/ENGINE/VARIANT.
# An overrides.txt next to a lock was used to compile it; it is part of the environment's key.
set -euo pipefail
engine=${1:?usage: engine_env.sh vllm|vllm/cpu|nemo-asr|pyannote}
here=$(cd "$(dirname "$0")" && pwd)
lock="$here/$engine/requirements.lock"
[ -f "$lock" ] || { echo "no lock file for engine '$engine' ($lock)" >&2; exit 2; }
overrides="$here/$engine/overrides.txt"
[ -f "$overrides" ] || overrides=/dev/null
digest=$(cat "$lock" "$overrides" | sha256sum | cut -c1-12)
env_dir="${BERTH_CACHE_DIR:-$HOME/.cache/berth}/envs/${engine//\//-}-$digest"
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
