#!/usr/bin/env bash
# Runs `cdn bench compare`: the same workloads against our edge, nginx (proxy_cache) and Varnish,
# all in front of one origin-mock on 127.0.0.1, and prints one table.
#
# Usage (from anywhere in the repository):
#   benches/compare.sh [cdn bench compare flags...]
#   e.g. benches/compare.sh --duration 10s --connections 64 --cache-size 256MiB
#
# Installs nginx and varnish (and cmake, which Pingora's build needs) with apt-get when missing,
# builds target/release/cdn, then runs `target/release/cdn bench compare` with the given flags.
# `cdn bench compare` starts and stops every server itself; see benches/README.md.
set -euo pipefail

die() {
    echo "compare: $*" >&2
    exit 1
}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[ -f Cargo.toml ] && [ -d benches ] || die "run from the repository (could not find it at $ROOT)"

missing=()
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing+=(nginx)
[ -x /usr/sbin/varnishd ] || command -v varnishd >/dev/null 2>&1 || missing+=(varnish)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing: ${missing[*]}"
    command -v apt-get >/dev/null 2>&1 ||
        die "missing ${missing[*]} and no apt-get here: install them and run again"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]}: run as root or install sudo"
        SUDO=sudo
    fi
    $SUDO apt-get update
    # policy-rc.d 101: do not start the distribution's nginx/varnish services; the bench starts
    # its own instances on free ports with its own configs.
    made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    status=0
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" || status=$?
    [ -z "$made_policy" ] || $SUDO rm -f /usr/sbin/policy-rc.d
    [ "$status" -eq 0 ] || die "apt-get install failed"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs) first"

echo "==> cargo build --release --bin cdn"
cargo build --release --bin cdn
exec "$ROOT/target/release/cdn" bench compare "$@"
