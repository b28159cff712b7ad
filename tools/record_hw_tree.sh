#!/bin/sh
# Records the /proc and /sys files that the host probes of hw/ read (cpu,
# cpufreq, memory, cgroup, numa, thermal, soc) from the running machine into
# DEST, keeping their paths, so that `ia_hw_detect` with .root = DEST (or
# `ipfs-accelerate hw --root DEST`) answers as it would on this machine.
# This is how fixtures under tests/fixtures/hw/ are recorded on real
# hardware: run it there, check the tree in, and write the test's
# expectations from what the machine is known to have.
#
#   tools/record_hw_tree.sh tests/fixtures/hw/host-<name>
#
# Only small text files are copied; nothing identifying is recorded beyond
# what the hardware files themselves say (no hostname, no process list).
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 DEST" >&2
    exit 2
fi
dest=$1
if [ -e "$dest" ] && [ -n "$(ls -A "$dest" 2>/dev/null)" ]; then
    echo "$0: $dest exists and is not empty" >&2
    exit 1
fi
mkdir -p "$dest"

# copy FILE: FILE -> DEST/FILE when readable. sysfs files may fail to read
# (a sensor that is off answers EIO): those are left out, as the probe
# would find them unreadable too.
copy() {
    [ -r "$1" ] && [ -f "$1" ] || return 0
    mkdir -p "$dest$(dirname "$1")"
    if ! cat "$1" >"$dest$1" 2>/dev/null; then
        rm -f "$dest$1"
    fi
}

copy /proc/cpuinfo
copy /proc/meminfo
copy /proc/self/cgroup # cat's cgroup: the same as this shell's

cpu=/sys/devices/system/cpu
copy $cpu/online
copy $cpu/possible
copy $cpu/present
for d in "$cpu"/cpu[0-9]*; do
    [ -d "$d" ] || continue
    for f in physical_package_id core_id cluster_id; do
        copy "$d/topology/$f"
    done
done
for d in "$cpu"/cpu0/cache/index[0-9]*; do
    [ -d "$d" ] || continue
    for f in level type size; do
        copy "$d/$f"
    done
done
copy $cpu/cpu0/cpufreq/scaling_governor
copy $cpu/cpu0/cpufreq/cpuinfo_max_freq

node=/sys/devices/system/node
copy $node/online
copy $node/possible
for d in "$node"/node[0-9]*; do
    [ -d "$d" ] || continue
    copy "$d/cpulist"
    copy "$d/meminfo"
done

for d in /sys/class/thermal/thermal_zone[0-9]*; do
    [ -d "$d" ] || continue
    copy "$d/type"
    copy "$d/temp"
done

for f in family machine soc_id revision; do
    copy /sys/devices/soc0/$f
done

# cgroup limit files from the process's own cgroup up to the root, for
# v2 ("0::/path") and for v1's memory hierarchy ("N:...memory...:/path").
walk() { # walk BASE PATH FILE...
    base=$1
    path=$2
    shift 2
    while :; do
        for f in "$@"; do
            copy "$base$path/$f"
        done
        [ -z "$path" ] && break
        path=${path%/*}
    done
}
copy /sys/fs/cgroup/cgroup.controllers
v2=$(sed -n 's|^0::\(/.*\)$|\1|p' /proc/self/cgroup 2>/dev/null | head -n 1)
[ "$v2" = "/" ] && v2=""
walk /sys/fs/cgroup "$v2" memory.max memory.current
v1=$(awk -F: '{ n = split($2, c, ","); for (i = 1; i <= n; i++) if (c[i] == "memory") { print $3; exit } }' \
    /proc/self/cgroup 2>/dev/null)
[ "$v1" = "/" ] && v1=""
walk /sys/fs/cgroup/memory "$v1" memory.limit_in_bytes memory.usage_in_bytes

{
    echo "recorded by tools/record_hw_tree.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "kernel: $(uname -srm)"
} >"$dest/RECORDED"
echo "recorded $(find "$dest" -type f | wc -l) files into $dest"
