#!/bin/bash
# vm-suite.sh: the whole test suite on the host most users run — cgroup v2 only,
# Debian 12's own kernel (6.1) — inside a qemu VM, from this checkout.
#
#   util/vm-suite.sh [--mode init|bare] [--only "lifecycle guest_net ..."] [--threads N] [--timeout SECONDS]
#
#   --mode init   controllers enabled in the root by the "init system" and the suite in
#                 a service cgroup, as on a systemd host (default)
#   --mode bare   no controller enabled anywhere: vserver enables what it needs itself
#   --only        run only these test executables (names of tests/*.rs)
#
# The VM image is a minimal Debian bookworm made with debootstrap from the host's
# mirror, with the packages the tests need and Debian's linux-image-amd64; it is
# built once into $VSERVER_VM_DIR (default /var/tmp/vserver-rs-vm) and rebuilt
# when the package list or the VM's init changes. Each run boots a throw-away
# overlay of it with a data disk holding this checkout (sources, the release
# binaries and test executables, and target/test-cache: the Debian test guests
# are built on the host first, the VM has no network). KVM is used when
# /dev/kvm can run a stock kernel, else software emulation (slow: allow an hour
# or more for the whole suite). Results: $VSERVER_VM_DIR/last/ (inside.log,
# one log per test executable); exit status 0 only if every executable passed.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
vmdir=${VSERVER_VM_DIR:-/var/tmp/vserver-rs-vm}
mode=init; only=""; threads=2; limit=10800
while [ $# -gt 0 ]; do
    case $1 in
        --mode) mode=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --timeout) limit=$2; shift 2 ;;
        *) sed -n '2,13p' "$0" >&2; exit 2 ;;
    esac
done
case $mode in init|bare) ;; *) echo "vm-suite: --mode init or bare" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "vm-suite: needs root (debootstrap, loop images, the tests)" >&2; exit 1; }

# What the VM needs to boot, then what the tests need (as .ci/run installs it).
PACKAGES="linux-image-amd64 initramfs-tools kmod udev
$(sed -n '/^apt-get install -y -qq busybox-static/,/>\/dev\/null/p' "$here/.ci/run" | tr -d '\\' | sed 's/apt-get install -y -qq//; s/>\/dev\/null//')"
need() { command -v "$1" >/dev/null || apt-get install -y -qq "$2" >/dev/null; }
need debootstrap debootstrap; need qemu-system-x86_64 qemu-system-x86; need qemu-img qemu-utils; need jq jq

image() {
    local key; key=$(printf '%s\n' "$PACKAGES" | cat - "$here/util/vm/init.sh" | sha256sum | cut -c1-16)
    if [ -f "$vmdir/image-$key/root.img" ]; then img=$vmdir/image-$key; return; fi
    echo "== building the VM image (once; a few minutes)"
    rm -rf "$vmdir"/image-*; img=$vmdir/image-$key; mkdir -p "$img"
    local tree=$img/tree mirror
    # The host's own mirror (the only outside address the project reaches).
    mirror=$(apt-get indextargets --format '$(SITE) $(RELEASE)' | awk '$2 == "bookworm" { print $1; exit }')
    [ -n "$mirror" ] || { echo "vm-suite: no bookworm mirror in the host's apt sources" >&2; exit 1; }
    debootstrap --variant=minbase --include="$(echo $PACKAGES | tr ' ' ,)" bookworm "$tree" "$mirror" > "$img/debootstrap.log" 2>&1 ||
        { tail -n 20 "$img/debootstrap.log"; exit 1; }
    install -m 0755 "$here/util/vm/init.sh" "$tree/sbin/vm-init"
    echo vsvm > "$tree/etc/hostname"
    printf '/dev/vda / ext4 rw 0 1\n' > "$tree/etc/fstab"
    # /tmp stays on the ext4 root: the tests need immutable flags and leases there.
    cp "$tree"/boot/vmlinuz-* "$img/vmlinuz"; cp "$tree"/boot/initrd.img-* "$img/initrd.img"
    local mb; mb=$(( $(du -sm "$tree" | cut -f1) + 4096 ))
    mkfs.ext4 -q -F -L vsvmroot -d "$tree" "$img/root.img" "${mb}M"
    rm -rf "$tree"
}

prepare() {
    echo "== building the release binaries and test executables"
    cd "$here"
    cargo build --release --workspace --locked 2>&1 | tail -n 1
    # The package test installs the .deb (as .ci/run builds it before the tests).
    util/build-deb.sh 2>&1 | tail -n 1
    cargo test --release --workspace --locked --no-run --message-format=json 2>/dev/null |
        jq -r 'select(.reason=="compiler-artifact" and .profile.test==true and .executable!=null)
               | "\(.executable) \(.manifest_path | sub("/Cargo.toml$";""))"' > "$run/tests.list"
    echo "== the Debian test guests, built on the host (the VM has no network)"
    CI=1 cargo test --release --locked --test prepare_caches -- --ignored 2>&1 | grep -E '^test result|FAILED|panicked' ||
        { echo "vm-suite: could not fill target/test-cache (the Debian templates)" >&2; exit 1; }
    local d=$run/data; mkdir -p "$d/src/target/release/deps" "$d/out"
    rsync -a --exclude=/target --exclude=/.git "$here/" "$d/src/"
    find "$here/target/release" -maxdepth 1 -type f -perm -u+x -exec cp -a {} "$d/src/target/release/" \;
    cut -d' ' -f1 "$run/tests.list" | xargs -r cp -a -t "$d/src/target/release/deps/"
    # The contents, also when target/test-cache is a symlink to a shared cache
    # (copied as a link it would dangle inside the VM).
    [ -d "$here/target/test-cache" ] && mkdir -p "$d/src/target/test-cache" && cp -a "$here/target/test-cache/." "$d/src/target/test-cache/"
    [ -d "$here/target/debian" ] && cp -a "$here/target/debian" "$d/src/target/"
    cp "$run/tests.list" "$d/tests.list"
    echo "$here" > "$d/src-path"
    echo "$threads" > "$d/threads"
    [ -z "$only" ] || printf '%s\n' $only > "$d/only"
    cp "$here/util/vm/inside.sh" "$d/inside.sh"
    local mb; mb=$(( $(du -sm "$d" | cut -f1) + 2048 ))
    mkfs.ext4 -q -F -L vsvmdata -d "$d" "$run/data.img" "${mb}M"
    rm -rf "$d"
}

boot() {
    local accel="-machine q35 -accel tcg,thread=multi,tb-size=512 -cpu max"
    if [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ]; then accel="-machine q35 -accel kvm -cpu host"; fi
    qemu-img create -q -f qcow2 -F raw -b "$img/root.img" "$run/root.qcow2"
    echo "== booting ($mode mode, ${accel#* -accel }), at most $limit s"
    local t0; t0=$(date +%s)
    timeout --foreground "$limit" qemu-system-x86_64 $accel -smp 2 -m 6144 \
        -kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
        -append "root=/dev/vda rw init=/sbin/vm-init console=ttyS0 panic=5 quiet cgroup_no_v1=all vsvm.mode=$mode" \
        -drive "file=$run/root.qcow2,if=virtio,format=qcow2,cache=unsafe" \
        -drive "file=$run/data.img,if=virtio,format=raw,cache=unsafe" \
        -device virtio-rng-pci -nic none -display none -no-reboot \
        -serial "file:$run/console.log" -monitor none || true
    echo "VM ran $(( $(date +%s) - t0 )) s"
}

collect() {
    local m=$run/mnt; mkdir -p "$m"
    mount -o loop "$run/data.img" "$m"
    rm -rf "$vmdir/last"; mkdir -p "$vmdir/last"
    cp -a "$m/out/." "$vmdir/last/" 2>/dev/null || true
    umount "$m"
    cp "$run/console.log" "$vmdir/last/"
    if [ -f "$vmdir/last/inside.log" ]; then sed -n '/^== tests/,$p' "$vmdir/last/inside.log"; else tail -n 30 "$run/console.log"; fi
    echo "(logs: $vmdir/last)"
}

mkdir -p "$vmdir"
image
run=$(mktemp -d "$vmdir/run.XXXXXX")
# set -e holds inside the trap too: a umount of what is not mounted must not
# end it before the clean-up, nor change the exit status.
trap 'rc=$?; umount "$run/mnt" 2>/dev/null || true; rm -rf "$run"; exit $rc' EXIT
prepare
boot
collect
[ "$(cat "$vmdir/last/inside.rc" 2>/dev/null)" = 0 ]
