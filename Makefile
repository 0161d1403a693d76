# Entry points: `make demo` and `make test` set up everything they need first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null)

.PHONY: setup venv binaries engines system-packages test test-images test-unit test-oldest-kubernetes lint demo cluster-up cluster-down images clean

setup: venv system-packages binaries engines ## Python environments, control-plane binaries, test tools

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@if [ -z "$(UV)" ]; then $(PYTHON) -m pip install --quiet uv; fi
	uv venv --quiet --allow-existing $(VENV)
	uv pip install --quiet --python $(PY) -e '.[test]'
	@touch $@

binaries: ## etcd, Kubernetes (the real node's kubelet and kube-proxy too), kwok, helm, crictl and the pause and test images, built once into ~/.cache/berth
	@command -v go >/dev/null || { echo "Go is needed to build the control plane: install it from https://go.dev/dl"; exit 1; }
	bash tests/cluster/build.sh

engines: venv ## each engine's environment from its image's lock file, once per lock, in ~/.cache/berth/envs
	@for engine in pyannote nemo-asr vllm/cpu; do runtime_images/engine_env.sh $$engine >/dev/null || exit 1; done

system-packages: ## Debian's Chromium (dashboard tests), espeak-ng (speech for the engine tests), the real node's containerd, runc, CNI plugins, conntrack, ipset and umoci, and buildah, mmdebstrap and docker-registry for the images
	@missing=""; command -v chromium >/dev/null || missing="chromium"; \
	command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	for tool in containerd runc conntrack umoci iptables ipset buildah mmdebstrap docker-registry; do \
		command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	[ -x /usr/lib/cni/bridge ] || missing="$$missing containernetworking-plugins"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else echo "the tests need:$$missing (sudo apt-get install$$missing)"; exit 1; fi; fi

# What the tests run in containers on the real node (vLLM's image needs a GPU).
TEST_IMAGES := operator downloader pyannote nemo-asr
test-images: venv system-packages ## the images the tests run, built when their content changed, in the local registry
	$(PY) -m images $(TEST_IMAGES)

test: setup test-images ## lint and the whole test suite
	$(PY) -m ruff check .
	$(PY) -m pytest

OLDEST_KUBERNETES := $(shell sed -n 's/^KUBERNETES_OLDEST_VERSION=//p' tests/cluster/versions.env)
test-oldest-kubernetes: venv ## the control-plane tests on the oldest supported Kubernetes minor
	BERTH_KUBERNETES_VERSION=$(OLDEST_KUBERNETES) bash tests/cluster/build.sh
	BERTH_KUBERNETES_VERSION=$(OLDEST_KUBERNETES) $(PY) -m pytest tests/control_plane tests/operator tests/chart

test-unit: venv
	$(PY) -m pytest tests/unit

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

demo: setup test-images ## a local cluster (a real node, fake GPU nodes), Berth installed from its images, and what it does there
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
