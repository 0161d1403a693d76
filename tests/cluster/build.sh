#!/usr/bin/env bash
# Builds the pinned control-plane binaries (etcd, Kubernetes, kwok, helm, a kstatus CLI) and the
# real node's (kubelet, kube-proxy, crictl, kube-router, the pause image) from the Go module proxy into a cache
# outside the work tree, keyed by version or source hash; reuses what is there.
set -euo pipefail

# shellcheck source=versions.env
source "$(dirname "${BASH_SOURCE[0]}")/versions.env"
KUBERNETES_VERSION="${BERTH_KUBERNETES_VERSION:-$KUBERNETES_VERSION}"

CACHE_ROOT="${BERTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/berth}"
BIN_DIR="$CACHE_ROOT/bin"
IMAGE_DIR="$CACHE_ROOT/images"
export CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local
# Go's build cache (7 GB for Kubernetes) serves only this build: the binaries are cached by
# version, so it goes when the script ends, leaving the disk to images and engine environments.
export GOCACHE="$CACHE_ROOT/go-build.tmp"
trap 'rm -rf "$GOCACHE"' EXIT

step() { printf '==> %s\n' "$*"; }
fail() { printf 'build.sh: step "%s" failed; see the output above\n' "$CURRENT_STEP" >&2; }
trap fail ERR

# run_step NAME DEST-DIR FUNCTION: runs FUNCTION to fill DEST-DIR unless DEST-DIR/.done exists.
run_step() {
  local name="$1" dest="$2" fn="$3" start
  CURRENT_STEP="$name"
  if [[ -f "$dest/.done" ]]; then
    step "$name: cached in $dest"
    return
  fi
  step "$name: building into $dest"
  start=$(date +%s)
  rm -rf "$dest.partial" && mkdir -p "$dest.partial"
  "$fn" "$dest.partial"
  touch "$dest.partial/.done"
  rm -rf "$dest" && mv "$dest.partial" "$dest"
  step "$name: done in $(( $(date +%s) - start )) s"
}

# new_module DIR NAME: an empty wrapper module in DIR.
new_module() {
  mkdir -p "$1" && (cd "$1" && printf 'module %s\n\ngo 1.24\n' "$2" > go.mod)
}

build_etcd() {
  local out="$1" mod="$1/src"
  new_module "$mod" berth/etcdwrapper
  cat > "$mod/main.go" <<'GO'
// Command etcd runs the etcd server from go.etcd.io/etcd/server/v3.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$mod" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" && go mod tidy && go build -o "$out/etcd" .)
  rm -rf "$mod"
}

# build_kubernetes_commands DEST VERSION CMD...: CMDs of k8s.io/kubernetes VERSION, built from a
# wrapper module.
build_kubernetes_commands() {
  local out="$1" mod="$1/src" KUBERNETES_VERSION="$2" minor staging ldflags
  shift 2
  new_module "$mod" berth/kubewrapper
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with local
  # directories; a consumer must replace each one with its published v0.Y.Z instead.
  minor="v0.${KUBERNETES_VERSION#v1.}"
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
  ldflags+=" -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$KUBERNETES_VERSION")"
  ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION"
  staging=$(curl -fsSL "$(go env GOPROXY | cut -d, -f1)/k8s.io/kubernetes/@v/$KUBERNETES_VERSION.mod" \
    | awk '$1 ~ /^k8s\.io\// && $2 == "=>" && $3 ~ /^\.\/staging/ {print $1}')
  [[ -n "$staging" ]] || { echo "no staging modules found in k8s.io/kubernetes $KUBERNETES_VERSION go.mod" >&2; return 1; }
  (
    cd "$mod"
    for m in $staging; do go mod edit -replace "$m=$m@$minor"; done
    go mod edit -require "k8s.io/kubernetes@$KUBERNETES_VERSION"
    for cmd in "$@"; do
      step "  go build k8s.io/kubernetes/cmd/$cmd"
      go build -ldflags "$ldflags" -o "$out/$cmd" "k8s.io/kubernetes/cmd/$cmd"
    done
  )
  rm -rf "$mod"
}

build_kubernetes() {
  build_kubernetes_commands "$1" "$KUBERNETES_VERSION" kube-apiserver kube-controller-manager kube-scheduler kubectl
}

build_kubernetes_node() {
  build_kubernetes_commands "$1" "$KUBELET_VERSION" kubelet kube-proxy
}

build_crictl() {
  GOBIN="$1" go install -ldflags "-s -w" "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION"
}

# pack_static_image DEST SOURCE-DIR TAG USER: a static Go binary built from SOURCE-DIR/main.go,
# alone in an OCI image (entrypoint /NAME) packed by umoci; DEST/image-oci.tar is the layout.
pack_static_image() {
  local out="$1" src="$2" tag="$3" user="$4" name layout="$1/oci" mod="$1/src"
  name=$(basename "$src")
  new_module "$mod" "berth/$name"
  cp "$src/main.go" "$mod/"
  (cd "$mod" && go build -ldflags "-s -w" -o "$out/$name" .)
  umoci init --layout "$layout"
  umoci new --image "$layout:$tag"
  umoci unpack --rootless --image "$layout:$tag" "$out/bundle"
  install -m 0755 "$out/$name" "$out/bundle/rootfs/$name"
  umoci repack --image "$layout:$tag" "$out/bundle"
  umoci config --image "$layout:$tag" --config.entrypoint "/$name" --config.user "$user" \
    --architecture amd64 --os linux
  umoci gc --layout "$layout"
  tar -C "$layout" -cf "$out/image-oci.tar" .
  rm -rf "$mod" "$layout" "$out/bundle" "$out/$name"
}

# The sandbox image, imported into the node's containerd (never pulled).
build_pause() {
  pack_static_image "$1" "$(dirname "${BASH_SOURCE[0]}")/pause" "$PAUSE_TAG" 65535:65535
}

# The real-node tests' image: one static binary with a few behaviours (serve, write, crash, eat).
build_testbox() {
  pack_static_image "$1" "$(dirname "${BASH_SOURCE[0]}")/../realnode/testbox" latest 65532:65532
}

build_kube_router() {
  GOBIN="$1" go install -ldflags "-s -w" "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION"
}

build_kwok() {
  GOBIN="$1" go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
}

build_kstatus() {
  local out="$1" mod="$1/src"
  new_module "$mod" berth/kstatus
  cp "$(dirname "${BASH_SOURCE[0]}")/kstatus/main.go" "$mod/"
  (cd "$mod" && go get "sigs.k8s.io/cli-utils@$CLI_UTILS_VERSION" && go mod tidy && go build -ldflags "-s -w" -o "$out/kstatus" .)
  rm -rf "$mod"
}

build_helm() {
  GOBIN="$1" go install -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

mkdir -p "$BIN_DIR"
total_start=$(date +%s)
run_step "etcd $ETCD_VERSION" "$BIN_DIR/etcd-$ETCD_VERSION" build_etcd
run_step "kubernetes $KUBERNETES_VERSION" "$BIN_DIR/kubernetes-$KUBERNETES_VERSION" build_kubernetes
run_step "kwok $KWOK_VERSION" "$BIN_DIR/kwok-$KWOK_VERSION" build_kwok
run_step "helm $HELM_VERSION" "$BIN_DIR/helm-$HELM_VERSION" build_helm
run_step "kubelet and kube-proxy $KUBELET_VERSION" "$BIN_DIR/kubernetes-node-$KUBELET_VERSION" build_kubernetes_node
run_step "crictl $CRI_TOOLS_VERSION" "$BIN_DIR/crictl-$CRI_TOOLS_VERSION" build_crictl
run_step "kube-router $KUBE_ROUTER_VERSION" "$BIN_DIR/kube-router-$KUBE_ROUTER_VERSION" build_kube_router
source_hash() { sha256sum "$(dirname "${BASH_SOURCE[0]}")/$1" | cut -c1-8; }
run_step "pause image $PAUSE_TAG" "$IMAGE_DIR/pause-$PAUSE_TAG-$(source_hash pause/main.go)" build_pause
run_step "testbox image" "$IMAGE_DIR/testbox-$(source_hash ../realnode/testbox/main.go)" build_testbox
run_step "kstatus (cli-utils $CLI_UTILS_VERSION)" "$BIN_DIR/kstatus-$CLI_UTILS_VERSION-$(source_hash kstatus/main.go)" build_kstatus
step "all binaries ready in $BIN_DIR ($(( $(date +%s) - total_start )) s)"
