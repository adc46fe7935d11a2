#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager v1.20.2 from Debian bookworm's `kubernetes`
# source package with Debian's Go, into a cache directory that later runs reuse.
#
#   devtools/localcluster/build-kubernetes.sh [CACHE_DIR]
#
# Prints progress; idempotent (a finished build is detected and reused; a half-done one resumes).
set -euo pipefail

CACHE_DIR=${1:-${DURABLE_ROLLOUTS_CACHE:-$HOME/.cache/durable-rollouts}}
VERSION=v1.20.2
OUT="$CACHE_DIR/kubernetes-$VERSION"
BIN="$OUT/bin"
WORK="$OUT/work"

if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ]; then
  echo "kubernetes $VERSION: cached in $BIN"
  exit 0
fi

step() { printf '[k8s-build %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
export DEBIAN_FRONTEND=noninteractive

need_pkgs=()
for p in golang-go etcd-server golang-github-modern-go-reflect2-dev dpkg-dev openssl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  step "apt-get install ${need_pkgs[*]}"
  apt-get update -q >/dev/null
  apt-get install -y -q "${need_pkgs[@]}" >/dev/null
fi

# deb-src with the same URIs and suites as the existing Debian source.
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  step "adding deb-src for the Debian sources"
  src=/etc/apt/sources.list.d/debian.sources
  [ -f "$src" ] || { echo "no $src to derive a deb-src line from" >&2; exit 1; }
  sed -e 's/^Types: deb$/Types: deb-src/' "$src" > /etc/apt/sources.list.d/durable-rollouts-src.sources
  apt-get update -q >/dev/null
fi

mkdir -p "$WORK"
cd "$WORK"
if [ ! -d "$WORK/src" ]; then
  step "apt-get source kubernetes (orig tarball ~34 MB)"
  rm -rf "$WORK/dl" && mkdir -p "$WORK/dl" && cd "$WORK/dl"
  apt-get source --download-only -q kubernetes >/dev/null
  tarball=$(ls kubernetes_*.orig.tar.gz | head -n1)
  step "unpacking $tarball"
  mkdir -p "$WORK/src.tmp" && tar -xzf "$tarball" -C "$WORK/src.tmp" --strip-components=1
  mv "$WORK/src.tmp" "$WORK/src"
  cd "$WORK"
fi

GOPATH="$WORK/gopath"
mkdir -p "$GOPATH/src/k8s.io"
ln -sfn "$WORK/src" "$GOPATH/src/k8s.io/kubernetes"
export GOPATH GO111MODULE=off GOPROXY=off CGO_ENABLED=0 GOFLAGS=-mod=vendor
export GOFLAGS=
export GOCACHE="$OUT/gocache"
cd "$GOPATH/src/k8s.io/kubernetes"

# reflect2 1.0.1 crashes at run time with Go >= 1.18: use Debian's 1.0.2 source.
R2=vendor/github.com/modern-go/reflect2
if [ ! -f "$R2/go_above_118.go" ]; then
  step "replacing vendored reflect2 with Debian's 1.0.2"
  rm -f "$R2"/*.go "$R2"/*.s
  cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$R2/"
  rm -f "$R2"/*_test.go
fi

OPENAPI=pkg/generated/openapi/zz_generated.openapi.go
if [ ! -f "$OPENAPI" ]; then
  step "building openapi-gen"
  go build -o "$WORK/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
  step "finding packages tagged +k8s:openapi-gen="
  pkgs=$(grep -rl --include='*.go' --exclude='*_test.go' '+k8s:openapi-gen=' pkg cmd plugin vendor/k8s.io/* 2>/dev/null \
         | grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' \
                   -e '/testdata/' -e '/testing/' -e '_examples' \
         | xargs -n1 dirname | sort -u | sed 's#^vendor/##; s#^\(pkg\|cmd\|plugin\)/#k8s.io/kubernetes/\1/#' | paste -sd, -)
  step "generating $OPENAPI ($(echo "$pkgs" | tr ',' '\n' | wc -l) packages)"
  mkdir -p "$WORK/report"
  "$WORK/openapi-gen" --input-dirs "$pkgs" \
    --output-package k8s.io/kubernetes/pkg/generated/openapi \
    --output-file-base zz_generated.openapi \
    --go-header-file vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
    --output-base "$GOPATH/src" \
    -r "$WORK/report/violations.list"
  if diff -q <(sort "$WORK/report/violations.list") <(sort api/api-rules/violation_exceptions.list) >/dev/null; then
    step "API-rule report equals api/api-rules/violation_exceptions.list (input set matches upstream)"
  else
    step "WARNING: API-rule report differs from upstream's violation_exceptions.list"
  fi
fi

LDFLAGS="-s -w"
for kv in gitVersion=$VERSION gitMajor=1 gitMinor=20 gitTreeState=clean; do
  LDFLAGS="$LDFLAGS -X k8s.io/kubernetes/vendor/k8s.io/component-base/version.$kv"
  LDFLAGS="$LDFLAGS -X k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version.$kv"
done
mkdir -p "$BIN.tmp"
for cmd in kube-apiserver kube-controller-manager; do
  step "go build cmd/$cmd (several minutes on 2 cores)"
  go build -ldflags "$LDFLAGS" -o "$BIN.tmp/$cmd" "./cmd/$cmd"
  step "built $cmd ($(du -h "$BIN.tmp/$cmd" | cut -f1))"
done
rm -rf "$BIN" && mv "$BIN.tmp" "$BIN"
"$BIN/kube-apiserver" --version
step "done; binaries in $BIN"
