#!/usr/bin/env bash
# Build the upstream test binaries (kube-apiserver, kube-controller-manager, kubectl, etcd) from their Go
# modules through the module proxy, into a cache outside the repository. Idempotent: binaries already in
# the cache are kept. Versions are pinned in localcluster/versions.env, and nowhere else.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
CACHE=${PREPULL_BIN_CACHE:-$HOME/.cache/prepull-testbin}
OUT=$CACHE/k8s-$K8S_VERSION-etcd-$ETCD_VERSION
WORK=$CACHE/src-$K8S_VERSION
export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0

minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
staging_version=v0.${K8S_VERSION#v1.}
mkdir -p "$OUT" "$WORK/k8s" "$WORK/etcd"
tools=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl)
need_k8s=0; for t in "${tools[@]}"; do [[ -x $OUT/${t##*/} ]] || need_k8s=1; done

if [[ $need_k8s == 1 ]]; then
  tmp=$(mktemp -d)
  kmod=$(cd "$tmp" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
         python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  rmdir "$tmp"
  go_line=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$kmod")
  godebug_line=$(grep -E '^godebug ' "$kmod" || true)
  mapfile -t staging < <(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/.*#\1#p' "$kmod")
  (( ${#staging[@]} > 20 )) || { echo "could not read staging list from $kmod" >&2; exit 1; }
  cd "$WORK/k8s"
  { printf 'module local/k8s-testbin\n\ngo %s\n\n%s\n\nreplace (\n' "$go_line" "$godebug_line"
    for m in "${staging[@]}"; do printf '\t%s => %s %s\n' "$m" "$m" "$staging_version"; done
    printf ')\n'; } > go.mod
  go get -tool "${tools[@]/%/@$K8S_VERSION}"
  build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=$build_date"
  done
  for t in "${tools[@]}"; do
    [[ -x $OUT/${t##*/} ]] && continue
    go build -trimpath -tags selinux,notest -ldflags "$ldflags" -o "$OUT/${t##*/}.tmp" "$t"
    mv "$OUT/${t##*/}.tmp" "$OUT/${t##*/}"
  done
fi

if [[ ! -x $OUT/etcd ]]; then
  cd "$WORK/etcd"
  printf 'module local/etcd-testbin\n\ngo 1.24.0\n' > go.mod
  cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go mod tidy
  go build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" .
  mv "$OUT/etcd.tmp" "$OUT/etcd"
fi
"$OUT/kube-apiserver" --version >&2
"$OUT/etcd" --version | sed -n 1p >&2
echo "$OUT"
