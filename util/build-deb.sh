#!/bin/sh
# Build the Debian package vserver-rs_VERSION_ARCH.deb with cargo-deb.
#
#   util/build-deb.sh            prints the path of the .deb on its last line
#
# Installs cargo-deb from crates.io first if it is missing (a few minutes,
# once). CARGO_TARGET_DIR is honoured; the package lands in
# $CARGO_TARGET_DIR/debian/ (default target/debian/). The packaging itself is
# [package.metadata.deb] in crates/vserver-info/Cargo.toml.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
target=${CARGO_TARGET_DIR:-$here/target}
case "$target" in /*) ;; *) target=$here/$target ;; esac

if ! cargo deb --version >/dev/null 2>&1; then
    echo "build-deb.sh: installing cargo-deb from crates.io" >&2
    cargo install --locked cargo-deb
fi

# Statically linked, as util/install.sh installs them.
release=$(util/build-release.sh | tail -n 1)
triple=$(basename "$(dirname "$release")")

# Man pages and completions from the binaries' own clap definitions; where
# cargo-deb looks for target/release/docs (for --target: target/TRIPLE/release/docs).
docs=$release/docs
rm -rf "$docs"
"$release/vserver-docs" --completer /usr/lib/vserver-rs/vserver-complete "$docs"
gzip -9n "$docs"/man1/*.1

mkdir -p "$target/debian"
rm -f "$target"/debian/vserver-rs_*.deb
cargo deb -p vserver-info --no-build --target "$triple" --output "$target/debian/" >&2
ls "$target"/debian/vserver-rs_*.deb
