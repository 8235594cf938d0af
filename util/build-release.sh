#!/bin/sh
# The release binaries as they are installed, packaged and benchmarked:
# statically linked (static-pie against glibc's static libc), for this
# machine's target. A vserver-rs tool runs for a few milliseconds at a time
# (`vserver NAME exec`, scripts calling vserver-info or vlimit): loading
# shared libraries and relocating against them cost `vserver` about 0.6 ms
# of every run. Static-pie keeps address randomisation. No tool resolves
# users, groups or hosts through NSS, which a static glibc could not load.
#
#   util/build-release.sh [CARGO ARGS]   prints the binaries' directory on its last line
#
# CARGO_TARGET_DIR is honoured. The flags apply to the target only: with
# --target, cargo builds build scripts and proc-macros for the host without
# them (a proc-macro cannot be linked statically).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
triple=$(rustc -vV | sed -n 's/^host: //p')
[ -n "$triple" ] || { echo "build-release.sh: rustc -vV names no host target" >&2; exit 1; }
target=${CARGO_TARGET_DIR:-$here/target}
case "$target" in /*) ;; *) target=$here/$target ;; esac
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --release --workspace --locked --target "$triple" "$@" >&2
echo "$target/$triple/release"
