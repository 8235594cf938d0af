#!/bin/sh
# pid 1 of the vm-suite VM: a cgroup v2-only host (the kernel runs with
# cgroup_no_v1=all) with Debian's own kernel. It mounts the API filesystems,
# sets the cgroup tree up as the mode on the kernel command line says, runs
# /data/inside.sh from the data disk and powers the VM off.
#   vsvm.mode=init  every controller enabled in the root, pid 1 in init.scope and the
#                   suite in system.slice/vm-suite.service (what systemd hosts look like)
#   vsvm.mode=bare  no controller enabled anywhere, everything in the root cgroup
#                   (a host whose init never touched cgroups: vserver enables them itself)
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb
log() { echo "vm-init: $*" > /dev/console; }
mount -o remount,rw /
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /run/lock
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
hostname vsvm
ip link set lo up
mode=init
for w in $(cat /proc/cmdline); do case $w in vsvm.mode=*) mode=${w#vsvm.mode=} ;; esac; done
suite_cg=/sys/fs/cgroup
if [ "$mode" = init ]; then
    mkdir -p /sys/fs/cgroup/init.scope /sys/fs/cgroup/system.slice/vm-suite.service
    echo $$ > /sys/fs/cgroup/init.scope/cgroup.procs
    for c in $(cat /sys/fs/cgroup/cgroup.controllers); do echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control; done
    for c in cpu io memory pids; do echo "+$c" > /sys/fs/cgroup/system.slice/cgroup.subtree_control; done
    suite_cg=/sys/fs/cgroup/system.slice/vm-suite.service
fi
mkdir -p /data
mount /dev/vdb /data || { log "no data disk"; echo o > /proc/sysrq-trigger; }
mkdir -p /data/out
{
    echo "kernel $(uname -r), mode $mode"
    echo "cmdline: $(cat /proc/cmdline)"
    grep cgroup /proc/self/mounts
    echo "root cgroup.controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
    echo "root cgroup.subtree_control: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
} > /data/out/boot.txt 2>&1
log "mode $mode; running the suite"
sh -c 'echo $$ > "$1/cgroup.procs"; cd /data && exec sh /data/inside.sh' vm-suite "$suite_cg" > /data/out/inside.log 2>&1 < /dev/null
echo $? > /data/out/inside.rc
tail -n 60 /data/out/inside.log > /dev/console
sync; umount /data || mount -o remount,ro /data; sync
log "power off"
echo o > /proc/sysrq-trigger
sleep 60
