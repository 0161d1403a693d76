# Entry points: `make demo` and `make test` set up everything they need first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null)

.PHONY: setup venv binaries engines system-packages test test-unit lint demo cluster-up cluster-down images clean

setup: venv binaries engines system-packages ## Python environments, control-plane binaries, test tools

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@if [ -z "$(UV)" ]; then $(PYTHON) -m pip install --quiet uv; fi
	uv venv --quiet --allow-existing $(VENV)
	uv pip install --quiet --python $(PY) -e '.[test]'
	@touch $@

binaries: ## etcd, Kubernetes, kwok and helm, built once into ~/.cache/berth
	@command -v go >/dev/null || { echo "Go is needed to build the control plane: install it from https://go.dev/dl"; exit 1; }
	bash tests/cluster/build.sh

engines: venv ## each engine's environment from its image's lock file, once per lock, in ~/.cache/berth/envs
	@for engine in pyannote nemo-asr vllm/cpu; do runtime_images/engine_env.sh $$engine >/dev/null || exit 1; done

system-packages: ## Debian's Chromium (dashboard tests) and espeak-ng (speech for the engine tests)
	@missing=""; command -v chromium >/dev/null || missing="chromium"; \
	command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else echo "the tests need:$$missing (sudo apt-get install$$missing)"; exit 1; fi; fi

test: setup ## lint and the whole test suite
	$(PY) -m ruff check .
	$(PY) -m pytest

test-unit: venv
	$(PY) -m pytest tests/unit

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

demo: venv binaries engines system-packages ## a local cluster with fake GPU nodes, and what Berth does on it
	$(PY) -m demo

cluster-up: venv binaries ## a control plane that stays up; then: eval "$$($(PY) -m tests.cluster env)"
	$(PY) -m tests.cluster up

cluster-down:
	$(PY) -m tests.cluster down

REGISTRY ?= 127.0.0.1:5000/berth-dev
IMAGES ?=
images: venv ## the five images (or IMAGES="operator ..."), built with buildah when their content changed, pushed to REGISTRY
	$(PY) -m images --registry $(REGISTRY) $(IMAGES)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
