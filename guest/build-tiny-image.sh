#!/bin/bash
# Build a tiny bootable test VM disk image (qcow2) offline from Debian packages.
#
#   guest/build-tiny-image.sh OUTPUT.qcow2
#
# Env: UCLOUD_GUEST_CACHE=DIR   where downloaded .deb files (and the files
#      extracted from the kernel package) are kept between builds
#      (default: $HOME/.cache/ucloud-guest).
#      UCLOUD_GUEST_OFFLINE=1     do not ask apt at all: use the cached .debs
#      (saves ~2.5 s of apt start-up; fails if the cache is empty).
#      UCLOUD_GUEST_INIT_D=DIR    copy DIR/*.sh into the guest's /etc/ucloud-init.d/
#      (run by /init, in name order, before the ready marker).
#
# Disk layout: 32 MiB, MBR (syslinux mbr.bin), one bootable FAT16 partition at
# sector 2048 holding syslinux, vmlinuz and initrd.gz. The initramfs is the whole
# guest: static busybox + /init (see guest/README.md). No mount, no loop device,
# nothing is installed on the host; everything happens in a temp dir.
set -euo pipefail

PROG=build-tiny-image
log() { echo "$PROG: $*" >&2; }
die() { echo "$PROG: error: $*" >&2; exit 1; }

[ $# -eq 1 ] || { echo "usage: $0 OUTPUT.qcow2" >&2; exit 2; }
OUTPUT=$1
CACHE=${UCLOUD_GUEST_CACHE:-$HOME/.cache/ucloud-guest}
OFFLINE=${UCLOUD_GUEST_OFFLINE:-0}
INIT_D=${UCLOUD_GUEST_INIT_D:-}
MBR_BIN=/usr/lib/syslinux/mbr/mbr.bin
DISK_MIB=32            # whole disk
PART_START=2048        # first sector of the FAT16 partition (1 MiB)

# Kernel modules, in load order (each one's depends= must come before it).
# Entries that are built into the kernel (modules.builtin) are skipped; ipv6 is
# built in on Debian 12 (CONFIG_IPV6=y) but would be loaded if it were a module.
MODULES="ipv6 virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
virtio_blk failover net_failover virtio_net button evdev"

for c in apt-get apt-cache dpkg-deb tar gzip mkfs.vfat mcopy syslinux sfdisk dd qemu-img; do
    command -v "$c" >/dev/null || die "missing command: $c (see guest/README.md, Needs)"
done
[ -r "$MBR_BIN" ] || die "missing $MBR_BIN (package syslinux-common)"

T0=$(date +%s.%N)
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ucloud-guest.XXXXXX")
XTMP=""
OUTTMP=""
cleanup() {
    rm -rf "$WORK"
    [ -z "$XTMP" ] || rm -rf "$XTMP"
    [ -z "$OUTTMP" ] || rm -f "$OUTTMP"
}
trap cleanup EXIT

APT_OPTS=(-q)
# as root, apt drops to user _apt which cannot write into a root-owned cache dir
[ "$(id -u)" -ne 0 ] || APT_OPTS+=(-o APT::Sandbox::User=root)

# fetch PKG FILE -> prints the path of PKG's .deb in the cache, downloaded if
# missing. FILE is the name apt-get download gives it ("" when apt cannot tell);
# falls back to the newest cached .deb of PKG when apt cannot tell or download.
fetch() {
    local pkg=$1 fn=$2 deb
    if [ -n "$fn" ] && [ -s "$CACHE/$fn" ]; then
        echo "$CACHE/$fn"; return
    fi
    if [ -n "$fn" ]; then
        log "downloading $pkg"
        if (cd "$CACHE" && apt-get "${APT_OPTS[@]}" download "$pkg" >&2) && [ -s "$CACHE/$fn" ]; then
            # keep only the current version of this package in the cache
            for deb in "$CACHE/${pkg}"_*.deb; do
                [ "$deb" = "$CACHE/$fn" ] || rm -f "$deb"
            done
            echo "$CACHE/$fn"; return
        fi
    fi
    deb=$(ls -t "$CACHE/${pkg}"_*.deb 2>/dev/null | head -n 1) || true
    [ -n "$deb" ] || die "cannot download $pkg and no cached copy in $CACHE"
    [ "$OFFLINE" = 1 ] || log "warning: using cached $(basename "$deb") (apt could not provide $pkg)"
    echo "$deb"
}

# --- 1. packages ------------------------------------------------------------
KPKG=""
if [ "$OFFLINE" != 1 ]; then
    KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null \
           | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ && !k { k = $2 } END { print k }') || KPKG=""
fi
if [ -z "$KPKG" ]; then
    # apt lists unavailable: use the newest kernel package in the cache
    KPKG=$(ls -t "$CACHE"/linux-image-[0-9]*.deb 2>/dev/null | head -n 1) || true
    [ -n "$KPKG" ] || die "cannot find the kernel package (apt-cache depends linux-image-amd64)"
    KPKG=$(basename "$KPKG"); KPKG=${KPKG%%_*}
    [ "$OFFLINE" = 1 ] || log "warning: apt-cache gave no kernel package, using cached $KPKG"
fi
ABI=${KPKG#linux-image-}
log "kernel package $KPKG (ABI $ABI)"
# file names as apt-get download writes them (each apt call takes ~1 s: one call).
# --print-uris prints nothing for files already in the cwd: ask from the empty WORK.
URIS=""
[ "$OFFLINE" = 1 ] \
    || URIS=$(cd "$WORK" && apt-get "${APT_OPTS[@]}" download --print-uris "$KPKG" busybox-static 2>/dev/null) \
    || URIS=""
deb_name() { awk -v p="$1_" 'index($2, p) == 1 { n = $2 } END { print n }' <<<"$URIS"; }
KDEB=$(fetch "$KPKG" "$(deb_name "$KPKG")")
BDEB=$(fetch busybox-static "$(deb_name busybox-static)")

# --- 2. extract the kernel and the modules (cached per .deb) -----------------
KDIR="$CACHE/extracted-$(basename "$KDEB" .deb)"
XKEY=$(echo $MODULES)   # re-extract when the module list changes
if [ "$(cat "$KDIR/.complete" 2>/dev/null)" != "$XKEY" ]; then
    log "extracting vmlinuz and modules from $(basename "$KDEB")"
    XTMP=$(mktemp -d "$CACHE/.extract.XXXXXX")
    pats=("./boot/vmlinuz-$ABI" "*/modules/$ABI/modules.builtin")
    for m in $MODULES; do pats+=("*/modules/$ABI/kernel/*/$m.ko*"); done
    # tar fails for names not in the archive (e.g. a built-in ipv6): checked below
    dpkg-deb --fsys-tarfile "$KDEB" | tar -x -C "$XTMP" --wildcards "${pats[@]}" 2>"$WORK/tar.err" || true
    [ -f "$XTMP/boot/vmlinuz-$ABI" ] || { cat "$WORK/tar.err" >&2; die "no vmlinuz-$ABI in $KDEB"; }
    chmod 755 "$XTMP"
    echo "$XKEY" > "$XTMP/.complete"
    rm -rf "$KDIR"
    mv "$XTMP" "$KDIR"
    XTMP=""
    # drop extractions of older kernel packages
    for d in "$CACHE"/extracted-*; do
        [ "$d" = "$KDIR" ] || rm -rf "$d"
    done
fi
MODDIR=$(find "$KDIR" -type d -path "*/modules/$ABI" -print -quit)
[ -n "$MODDIR" ] || die "no modules/$ABI in $KDEB"

# --- 3. initramfs root -------------------------------------------------------
log "building initramfs"
ROOT="$WORK/root"
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,root,run,var/log,lib/modules}
mkdir -p "$ROOT"/etc/{acpi/PWRF,ucloud-init.d}
chmod 1777 "$ROOT/tmp"
dpkg-deb --fsys-tarfile "$BDEB" | tar -x -C "$WORK" ./bin/busybox
BB="$WORK/bin/busybox"
cp "$BB" "$ROOT/bin/busybox"
for p in $("$BB" --list-full); do
    case "$p" in linuxrc|bin/busybox) continue ;; esac
    [ -e "$ROOT/$p" ] || ln -s /bin/busybox "$ROOT/$p"
done

: > "$ROOT/etc/ucloud-modules"
loaded=" "
for m in $MODULES; do
    src=$(find "$MODDIR" -name "$m.ko*" -print -quit)
    if [ -z "$src" ]; then
        grep -qE "/$m\.ko$" "$MODDIR/modules.builtin" || die "module $m neither in $KDEB nor built in"
        loaded="$loaded$m "
        continue
    fi
    dst="$ROOT/lib/modules/$m.ko"
    case "$src" in   # busybox insmod cannot read compressed modules
        *.ko)     cp "$src" "$dst" ;;
        *.ko.xz)  "$BB" xzcat "$src" > "$dst" ;;
        *.ko.gz)  gzip -dc "$src" > "$dst" ;;
        *.ko.zst) command -v zstd >/dev/null || die "zstd needed for $src"; zstd -qdc "$src" > "$dst" ;;
        *) die "unknown module format: $src" ;;
    esac
    deps=$(tr '\0' '\n' < "$dst" | awk -F= '$1 == "depends" && !d { d = $2 } END { print d }' | tr ',-' ' _')
    for d in $deps; do
        case "$loaded" in
            *" $d "*) ;;
            *) grep -qE "/$d\.ko$" "$MODDIR/modules.builtin" \
                   || die "module $m depends on $d, which is not loaded before it (fix MODULES)" ;;
        esac
    done
    loaded="$loaded$m "
    echo "$m" >> "$ROOT/etc/ucloud-modules"
done
cp "$KDIR/boot/vmlinuz-$ABI" "$WORK/vmlinuz"

cat > "$ROOT/init" <<'EOF'
#!/bin/sh
# /init of the ucloud tiny test guest (written by guest/build-tiny-image.sh)
export PATH=/sbin:/usr/sbin:/bin:/usr/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts

while read -r m; do
    [ -n "$m" ] && { insmod "/lib/modules/$m.ko" || echo "ucloud-init: insmod $m failed"; }
done < /etc/ucloud-modules

name=ucloud-guest
for arg in $(cat /proc/cmdline); do
    case "$arg" in ucloud.hostname=?*) name=${arg#ucloud.hostname=} ;; esac
done
hostname "$name"

# IPv6 SLAAC: accept router advertisements and autoconfigure on every interface
for d in /proc/sys/net/ipv6/conf/*; do
    echo 0 > "$d/disable_ipv6"; echo 1 > "$d/accept_ra"; echo 1 > "$d/autoconf"
done 2>/dev/null
ip link set lo up
for i in /sys/class/net/eth*; do
    [ -e "$i" ] && ip link set "${i##*/}" up
done
# NICs hot-plugged later (ucloud network attach) come up as well: checked 5 times a second.
(
    while true; do
        for i in /sys/class/net/eth*; do
            # a NIC being unplugged can vanish between the glob and the read: an empty
            # value in $(( )) would end this loop for good
            flags=$(cat "$i/flags" 2>/dev/null) || continue
            [ -n "$flags" ] && [ $(( $flags & 1 )) -eq 0 ] && ip link set "${i##*/}" up
        done
        usleep 200000
    done
) &

# ACPI power button (QMP system_powerdown) -> /etc/acpi/PWRF/00000080
n=0
while [ ! -e /dev/input/event0 ] && [ $n -lt 20 ]; do usleep 100000; n=$((n + 1)); done
acpid -c /etc/acpi -l /var/log/acpid.log

for f in /etc/ucloud-init.d/*.sh; do
    [ -f "$f" ] && { sh "$f" || echo "ucloud-init: $f failed"; }
done

echo UCLOUD-GUEST-READY > /dev/ttyS0
while true; do
    setsid cttyhack sh -l
    usleep 100000
done
EOF
cat > "$ROOT/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
poweroff -f
EOF
# ssh keys from ucloud-meta (fe80::a9fe:a9fe on every network): on the console and installed
cat > "$ROOT/etc/ucloud-init.d/50-ssh-keys.sh" <<'EOF'
#!/bin/sh
ls /sys/class/net | grep -q '^eth' || exit 0
n=0
while [ $n -lt 100 ]; do
    for i in /sys/class/net/eth*; do
        dev=${i##*/}
        # busybox wget crashes in this static initramfs; plain HTTP/1.0 over nc does the job
        printf 'GET /ssh-keys HTTP/1.0\r\nHost: metadata\r\n\r\n' \
            | nc -w 2 "fe80::a9fe:a9fe%$dev" 80 > /tmp/ssh-keys.http 2>/dev/null
        if head -n 1 /tmp/ssh-keys.http | grep -q ' 200 '; then
            tr -d '\r' < /tmp/ssh-keys.http | sed '1,/^$/d' > /tmp/ssh-keys
            mkdir -p /root/.ssh && chmod 700 /root/.ssh
            cp /tmp/ssh-keys /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys
            { echo UCLOUD-SSH-KEYS-BEGIN; cat /tmp/ssh-keys; echo UCLOUD-SSH-KEYS-END; } > /dev/ttyS0
            exit 0
        fi
    done
    usleep 100000
    n=$((n + 1))
done
echo "ucloud-init: no metadata service answered" > /dev/ttyS0
EOF
cat > "$ROOT/etc/profile" <<'EOF'
export PATH=/sbin:/usr/sbin:/bin:/usr/bin HOME=/root
PS1='\u@\h:\w# '
cd /root
EOF
echo 'root:x:0:0:root:/root:/bin/sh' > "$ROOT/etc/passwd"
echo 'root:x:0:' > "$ROOT/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$ROOT/etc/hosts"
chmod 755 "$ROOT/init" "$ROOT/etc/acpi/PWRF/00000080" "$ROOT/etc/ucloud-init.d/50-ssh-keys.sh"
if [ -n "$INIT_D" ]; then
    for f in "$INIT_D"/*.sh; do
        [ -f "$f" ] || continue
        install -m 755 "$f" "$ROOT/etc/ucloud-init.d/"
        log "adding init script $(basename "$f")"
    done
fi

(cd "$ROOT" && find . | LC_ALL=C sort | "$BB" cpio -o -H newc -R 0:0 2>/dev/null) \
    | gzip -n > "$WORK/initrd.gz"

# --- 4. FAT16 partition with syslinux, then the disk --------------------------
log "building disk"
cat > "$WORK/syslinux.cfg" <<'EOF'
SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL /vmlinuz
  INITRD /initrd.gz
  APPEND console=ttyS0 quiet loglevel=3 panic=-1 cryptomgr.notests
EOF
export MTOOLS_SKIP_CHECK=1
PART_SECTORS=$(( DISK_MIB * 2048 - PART_START ))
truncate -s $(( PART_SECTORS * 512 )) "$WORK/fat.img"
mkfs.vfat -F 16 -n UCLOUD -i 55434c44 -h "$PART_START" "$WORK/fat.img" >/dev/null
mcopy -i "$WORK/fat.img" "$WORK/vmlinuz" "$WORK/initrd.gz" "$WORK/syslinux.cfg" ::/
syslinux --install "$WORK/fat.img"

truncate -s "${DISK_MIB}M" "$WORK/disk.raw"
printf 'label: dos\nlabel-id: 0x55434c44\nstart=%d, type=6, bootable\n' "$PART_START" \
    | sfdisk -q "$WORK/disk.raw"
dd if="$MBR_BIN" of="$WORK/disk.raw" bs=440 count=1 conv=notrunc status=none
dd if="$WORK/fat.img" of="$WORK/disk.raw" bs=512 seek="$PART_START" conv=notrunc status=none

# write next to OUTPUT, then rename: a VM using the old image keeps its inode
OUTTMP="$(dirname "$OUTPUT")/.$(basename "$OUTPUT").tmp.$$"
qemu-img convert -f raw -O qcow2 "$WORK/disk.raw" "$OUTTMP"
mv -f "$OUTTMP" "$OUTPUT"
OUTTMP=""
log "wrote $OUTPUT ($(du -k "$OUTPUT" | cut -f1) KiB, kernel $ABI, initrd $(du -k "$WORK/initrd.gz" | cut -f1) KiB) in $(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
