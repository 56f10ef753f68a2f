#!/usr/bin/env bash
# Checks, without installing an old toolchain, that no dependency a build
# of ndprune uses declares a `rust-version` above what that build promises.
#
# For each build below, `cargo tree` lists the packages it compiles (normal
# and build dependencies, for every target platform, dev-dependencies left
# out); `cargo metadata` says where their manifests are, and each
# manifest's `rust-version` is compared with the build's limit. Fails (exit
# 1) on any package above its limit, on a package whose manifest cannot be
# found, or when a limit disagrees with `rust-version` in Cargo.toml.
#
# What it does not do: compile anything with that Rust version. A package
# that declares no `rust-version` is listed as unverified, not failed; and a
# declared `rust-version` is only the package's own claim. If a 1.85
# toolchain is installed (`rustup toolchain list`), the library is also
# checked with it; nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

# The MSRV of the package (Cargo.toml `rust-version`), and per build: a name,
# the cargo feature flags, the Rust version it needs.
LIB_MSRV=1.85
BUILDS=(
  "library, every feature but nuc and cli|--no-default-features --features rayon,safetensors,half|1.85"
  "library, default features (nuc: nalgebra)|--features default|1.89"
  "library with pth, without nuc (pytorch-reader: zip 9.8)|--no-default-features --features rayon,safetensors,pth|1.89"
  "command line (cli, which turns pth on), without nuc|--no-default-features --features cli,rayon|1.89"
  "everything (--all-features)|--all-features|1.89"
)

fail=0
err() {
  echo "check_msrv: FAIL: $*" >&2
  fail=1
}

# "1.85" < "1.85.1" < "1.88.0"; missing components count as 0.
version_le() {
  local IFS=.
  local -a a=($1) b=($2)
  local i x y
  for i in 0 1 2; do
    x=${a[i]:-0}
    y=${b[i]:-0}
    if ((10#$x < 10#$y)); then return 0; fi
    if ((10#$x > 10#$y)); then return 1; fi
  done
  return 0
}

# A manifest's `key = "value"` from its [package] table.
package_field() {
  awk -v key="$2" '
    /^\[/ { in_pkg = ($0 == "[package]") ; next }
    in_pkg && $1 == key && $2 == "=" {
      v = $3; gsub(/"/, "", v); print v; exit
    }' "$1"
}

declared=$(package_field Cargo.toml rust-version)
echo "== Cargo.toml: rust-version = \"$declared\""
if [[ "$declared" != "$LIB_MSRV" ]]; then
  err "Cargo.toml says rust-version \"$declared\", this script checks $LIB_MSRV"
fi

# name@version -> manifest path, for every package any feature may use.
declare -A manifest
metadata=$(cargo metadata --format-version 1 --locked --all-features)
while IFS= read -r path; do
  name=$(package_field "$path" name)
  version=$(package_field "$path" version)
  if [[ -z "$name" || -z "$version" ]]; then
    err "no name or version in $path"
    continue
  fi
  manifest["$name@$version"]=$path
done < <(grep -o '"manifest_path":"[^"]*"' <<<"$metadata" | sed 's/^"manifest_path":"//; s/"$//' | sort -u)
if ((${#manifest[@]} == 0)); then
  err "cargo metadata listed no manifests"
fi

for build in "${BUILDS[@]}"; do
  IFS='|' read -r label flags limit <<<"$build"
  echo "== $label: cargo tree $flags; every package must declare rust-version <= $limit"
  # shellcheck disable=SC2086 # the flags are words
  packages=$(cargo tree --locked $flags --target all -e normal,build \
    --prefix none --format '{p}' | sed 's/ (\*)$//; s/ (proc-macro)$//; s/ (.*)$//' | sort -u)
  if [[ -z "$packages" ]]; then
    err "cargo tree listed nothing for $label"
    continue
  fi
  checked=0
  undeclared=()
  while read -r name version; do
    key="$name@${version#v}"
    path=${manifest[$key]:-}
    if [[ -z "$path" ]]; then
      err "$key: no manifest in cargo metadata"
      continue
    fi
    rv=$(package_field "$path" rust-version)
    if [[ -z "$rv" ]]; then
      undeclared+=("$key")
      continue
    fi
    checked=$((checked + 1))
    if version_le "$rv" "$limit"; then
      printf '   ok    %-40s rust-version %s\n' "$key" "$rv"
    else
      printf '   ABOVE %-40s rust-version %s > %s\n' "$key" "$rv" "$limit"
      err "$label: $key declares rust-version $rv, above $limit"
    fi
  done <<<"$packages"
  echo "   $checked packages checked; declaring no rust-version (unverified): ${undeclared[*]:-none}"
done

# A real build with the old toolchain, only if one is already installed.
if command -v rustup >/dev/null 2>&1 && rustup toolchain list 2>/dev/null | grep -q "^$LIB_MSRV"; then
  toolchain=$(rustup toolchain list | grep "^$LIB_MSRV" | head -n 1 | cut -d' ' -f1)
  echo "== cargo +$toolchain check (library, every feature but nuc and cli)"
  cargo "+$toolchain" check --locked --lib --no-default-features --features rayon,safetensors,half ||
    err "the library does not build with $toolchain"
else
  echo "== no Rust $LIB_MSRV toolchain installed: no build with it (none is downloaded)"
fi

if ((fail)); then
  echo "check_msrv: FAILED" >&2
  exit 1
fi
echo "check_msrv: ok"
