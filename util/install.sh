#!/bin/sh
# Install vserver-rs from a release build, or uninstall it again.
#
#   util/build-release.sh                 # statically linked release binaries
#   sudo util/install.sh                  # into /usr/local, config in /etc
#   sudo util/install.sh --uninstall      # remove exactly what was installed
#   make-style staging: DESTDIR=/tmp/stage PREFIX=/usr util/install.sh
#
# Environment (packagers' names):
#   PREFIX          /usr/local      binaries in PREFIX/bin, pages in PREFIX/share/man
#   DESTDIR         (empty)         staging root prepended to every path
#   SYSCONFDIR      /etc            the sample .defaults go to SYSCONFDIR/vservers/.defaults
#   RUNDIR          /run/vservers   run state; RUNDIR/.locks for locks
#   SYSTEMDUNITDIR  PREFIX/lib/systemd/system
#   TMPFILESDIR     PREFIX/lib/tmpfiles.d
#   LIBDIR          PREFIX/lib/vserver-rs   vserver-complete, which the completion scripts run
#   DOCDIR          PREFIX/share/doc/vserver-rs   README, sample configuration, JSON schemas
#   CARGO_TARGET_DIR target         where the release build put the binaries
#   BUILD_DIR       the directory holding the binaries: CARGO_TARGET_DIR/TRIPLE/release
#                   (util/build-release.sh) if it has them, else CARGO_TARGET_DIR/release
#
# Every file and directory created is listed in a manifest,
# PREFIX/share/vserver-rs/install-manifest, with a checksum per file. The
# uninstall removes what the manifest lists and nothing else: configuration
# files changed since (and everything else under SYSCONFDIR/vservers, such as
# the guests) are left alone, directories only go when empty.
#
# Exit codes: 0 success, 1 failure, 2 bad usage.

set -eu

usage() {
    sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'
}

mode=install
case "${1:-}" in
    "") ;;
    --uninstall) mode=uninstall ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (--uninstall or --help)" >&2; exit 2 ;;
esac
[ $# -le 1 ] || { echo "install.sh: one argument at most" >&2; exit 2; }

here=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
SYSCONFDIR=${SYSCONFDIR:-/etc}
RUNDIR=${RUNDIR:-/run/vservers}
SYSTEMDUNITDIR=${SYSTEMDUNITDIR:-$PREFIX/lib/systemd/system}
TMPFILESDIR=${TMPFILESDIR:-$PREFIX/lib/tmpfiles.d}
LIBDIR=${LIBDIR:-$PREFIX/lib/vserver-rs}
DOCDIR=${DOCDIR:-$PREFIX/share/doc/vserver-rs}
target=${CARGO_TARGET_DIR:-$here/target}
case "$target" in /*) ;; *) target=$here/$target ;; esac
static_release=$target/$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')/release
if [ -n "${BUILD_DIR:-}" ]; then
    release=$BUILD_DIR
elif [ -x "$static_release/vserver" ]; then
    release=$static_release
else
    release=$target/release
fi

BINARIES="vserver vlimit vhashify chbind vserver-stat vserver-info vps vtop vkill vwait vuname vapt-get vdlimit"
manifest=$PREFIX/share/vserver-rs/install-manifest
confdir=$SYSCONFDIR/vservers

die() { echo "install.sh: $*" >&2; exit 1; }

# --- the manifest: "d PATH" for a directory we created, "f SHA256 PATH" for a file

new_manifest=
record() { printf '%s\n' "$*" >>"$new_manifest"; }

sha() { sha256sum "$1" | cut -d' ' -f1; }

# The previous install's record of PATH, if any ("d" or the checksum).
previous() {
    [ -f "$DESTDIR$manifest" ] || return 0
    awk -v p="$1" '$1 == "d" && $2 == p { print "d"; exit } $1 == "f" && $3 == p { print $2; exit }' \
        "$DESTDIR$manifest"
}

# mkdir -p that records each directory it creates (or created last time).
make_dir() { # MODE PATH
    _mode=$1 _path=$2 _missing=
    _p=$_path
    while [ ! -d "$DESTDIR$_p" ] || [ "$(previous "$_p")" = d ]; do
        _missing="$_p $_missing"
        [ "$_p" = / ] && break
        _p=$(dirname "$_p")
    done
    for _d in $_missing; do
        if [ ! -d "$DESTDIR$_d" ]; then
            mkdir "$DESTDIR$_d"
            chmod 0755 "$DESTDIR$_d"
        fi
        grep -qxF "d $_d" "$new_manifest" || record "d $_d"
    done
    chmod "$_mode" "$DESTDIR$_path"
}

put_file() { # MODE SOURCE PATH
    make_dir 0755 "$(dirname "$3")"
    install -m "$1" "$2" "$DESTDIR$3"
    record "f $(sha "$DESTDIR$3") $3"
}

# A configuration file is never overwritten, unless it is the unchanged
# sample of the previous install.
put_config() { # SOURCE PATH
    if [ -e "$DESTDIR$2" ] && [ "$(previous "$2")" != "$(sha "$DESTDIR$2")" ]; then
        echo "install.sh: keeping $DESTDIR$2 (it exists and is not our unchanged sample)" >&2
        return
    fi
    put_file 0644 "$1" "$2"
}

do_install() {
    for b in $BINARIES vserver-docs vserver-complete; do
        [ -x "$release/$b" ] || die "$release/$b is missing: run util/build-release.sh first (or set CARGO_TARGET_DIR)"
    done
    [ -z "$DESTDIR" ] || mkdir -p "$DESTDIR"
    stage=$(mktemp -d)
    new_manifest=$stage/manifest
    trap 'rm -rf "$stage"' EXIT
    : >"$new_manifest"
    "$release/vserver-docs" --completer "$LIBDIR/vserver-complete" "$stage/docs" ||
        die "generating the man pages and completions failed"

    for b in $BINARIES; do
        put_file 0755 "$release/$b" "$PREFIX/bin/$b"
    done
    put_file 0755 "$release/vserver-complete" "$LIBDIR/vserver-complete"
    for page in "$stage"/docs/man1/*.1; do
        put_file 0644 "$page" "$PREFIX/share/man/man1/$(basename "$page")"
    done
    for f in "$stage"/docs/completions/bash/*; do
        put_file 0644 "$f" "$PREFIX/share/bash-completion/completions/$(basename "$f")"
    done
    for f in "$stage"/docs/completions/zsh/*; do
        put_file 0644 "$f" "$PREFIX/share/zsh/site-functions/$(basename "$f")"
    done
    for f in "$stage"/docs/completions/fish/*; do
        put_file 0644 "$f" "$PREFIX/share/fish/vendor_completions.d/$(basename "$f")"
    done

    # The units name /usr/bin; point them at PREFIX/bin.
    mkdir "$stage/units"
    for unit in "$here"/util/systemd/*.service "$here"/util/systemd/*.timer; do
        sed "s|/usr/bin/|$PREFIX/bin/|g" "$unit" >"$stage/units/$(basename "$unit")"
        put_file 0644 "$stage/units/$(basename "$unit")" "$SYSTEMDUNITDIR/$(basename "$unit")"
    done
    sed "s|/run/vservers|$RUNDIR|g" "$here/util/systemd/vserver-rs.tmpfiles" >"$stage/tmpfiles"
    put_file 0644 "$stage/tmpfiles" "$TMPFILESDIR/vserver-rs.conf"
    if [ -f "$here/util/vhashify.cron" ]; then
        make_dir 0755 "$SYSCONFDIR/cron.d"
        put_config "$here/util/vhashify.cron" "$SYSCONFDIR/cron.d/vhashify"
    fi

    # For admins: the README, the sample configuration tree, the JSON schemas.
    put_file 0644 "$here/README.md" "$DOCDIR/README.md"
    (cd "$here/etc-vservers" && find . -type f) | sort | while read -r f; do
        put_file 0644 "$here/etc-vservers/${f#./}" "$DOCDIR/examples/etc-vservers/${f#./}"
    done
    for f in "$here"/schemas/*; do
        put_file 0644 "$f" "$DOCDIR/schemas/$(basename "$f")"
    done

    make_dir 0755 "$confdir"
    (cd "$here/etc-vservers/.defaults" && find . -type d) | sort | while read -r d; do
        make_dir 0755 "$confdir/.defaults/${d#./}"
    done
    (cd "$here/etc-vservers/.defaults" && find . -type f) | sort | while read -r f; do
        put_config "$here/etc-vservers/.defaults/${f#./}" "$confdir/.defaults/${f#./}"
    done

    # Run state is readable (vserver NAME status); locks are root's alone.
    # At boot the tmpfiles.d entry makes both again.
    make_dir 0755 "$RUNDIR"
    make_dir 0700 "$RUNDIR/.locks"

    make_dir 0755 "$(dirname "$manifest")"
    record "f - $manifest"
    install -m 0644 "$new_manifest" "$DESTDIR$manifest"

    if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
        systemctl daemon-reload || true
    fi
    echo "installed vserver-rs under ${DESTDIR}$PREFIX (manifest $DESTDIR$manifest)"
    [ -n "$DESTDIR" ] || echo "boot-time start of guests marked default: systemctl enable vservers.service"
}

do_uninstall() {
    [ -f "$DESTDIR$manifest" ] || die "$DESTDIR$manifest not found: nothing installed under ${DESTDIR}$PREFIX"
    list=$(mktemp)
    trap 'rm -f "$list"' EXIT
    cp "$DESTDIR$manifest" "$list"
    status=0
    while read -r kind sum path; do
        [ "$kind" = f ] || continue
        [ -e "$DESTDIR$path" ] || continue
        case "$path" in
            "$SYSCONFDIR"/*)
                if [ "$(sha "$DESTDIR$path")" != "$sum" ]; then
                    echo "install.sh: keeping $DESTDIR$path (changed since it was installed)" >&2
                    continue
                fi ;;
        esac
        rm -f "$DESTDIR$path" || status=1
    done <"$list"
    # Deepest directories first; a directory with anything left in it stays.
    awk '$1 == "d" { print $2 }' "$list" | sort -r | while read -r dir; do
        rmdir "$DESTDIR$dir" 2>/dev/null || true
    done
    if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
        systemctl daemon-reload || true
    fi
    [ $status -eq 0 ] || die "some files could not be removed"
    echo "removed vserver-rs from ${DESTDIR}$PREFIX"
}

case $mode in
    install) do_install ;;
    uninstall) do_uninstall ;;
esac
