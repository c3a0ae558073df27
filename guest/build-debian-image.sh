#!/bin/bash
# Build a small bootable Debian 12 cloud image (qcow2) with Debian's own cloud-init.
#
#   guest/build-debian-image.sh OUTPUT.qcow2
#
# Env: UCLOUD_GUEST_CACHE=DIR   where downloaded .deb files are kept between builds
#      (default: $HOME/.cache/ucloud-guest; the debs go to DIR/debian-debs).
#      UCLOUD_DEBIAN_MIRROR=URL   Debian mirror (default http://deb.debian.org/debian).
#      UCLOUD_DEBIAN_SECURITY=URL security mirror (default http://deb.debian.org/debian-security).
#
# mmdebstrap installs a minbase system plus the packages below (no recommends, no docs, man
# pages or locales) into a directory. Disk layout: MBR (syslinux mbr.bin); partition 1, FAT16
# with syslinux and the chroot's vmlinuz and initrd.img; partition 2, ext4 labelled
# ucloud-root made by `mkfs.ext4 -d` from the directory straight into the disk file. No loop
# device and nothing mounted on the host (mmdebstrap mounts /proc, /sys and /dev in the chroot
# while it installs, inside its own mount namespace). cloud-init's configuration is Debian's:
# the image finds ucloud's config drive (label config-2) with the stock datasource list.
set -euo pipefail

PROG=build-debian-image
log() { echo "$PROG: $(date +%T) $*" >&2; }
die() { echo "$PROG: error: $*" >&2; exit 1; }

[ $# -eq 1 ] || { echo "usage: $0 OUTPUT.qcow2" >&2; exit 2; }
OUTPUT=$1
CACHE=${UCLOUD_GUEST_CACHE:-$HOME/.cache/ucloud-guest}
MIRROR=${UCLOUD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${UCLOUD_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
MBR_BIN=/usr/lib/syslinux/mbr/mbr.bin
PART_START=2048        # first sector of the FAT16 boot partition (1 MiB)
BOOT_MIB=64            # kernel (~8 MiB) + initrd (~25 MiB with initramfs-tools' MODULES=most)
ROOT_LABEL=ucloud-root

# What Debian's own cloud images boot with: systemd, ifupdown (cloud-init renders
# /etc/network/interfaces.d from network_data.json), openssh and sudo for the default user
# `debian` that cloud-init creates. The cloud kernel has virtio and ext4 and boots faster.
PACKAGES=(
    systemd-sysv udev e2fsprogs initramfs-tools linux-image-cloud-amd64
    cloud-init openssh-server sudo ifupdown iproute2 netbase
)

for c in mmdebstrap mkfs.ext4 mkfs.vfat mcopy syslinux sfdisk dd qemu-img; do
    command -v "$c" >/dev/null || die "missing command: $c (run scripts/setup.sh)"
done
[ -r "$MBR_BIN" ] || die "missing $MBR_BIN (package syslinux-common)"
[ "$(id -u)" -eq 0 ] || die "must run as root (mmdebstrap's root mode makes the file owners)"

T0=$(date +%s.%N)
DEBS="$CACHE/debian-debs"
mkdir -p "$DEBS"
DEBS=$(cd "$DEBS" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/ucloud-debian.XXXXXX")
OUTTMP=""
cleanup() {
    rm -rf "$WORK"
    [ -z "$OUTTMP" ] || rm -f "$OUTTMP"
}
trap cleanup EXIT
ROOT="$WORK/root"

# --- 1. the root filesystem ---------------------------------------------------
log "installing Debian 12 into $ROOT"
excludes=()
for p in doc man info locale lintian linda; do
    excludes+=(--dpkgopt="path-exclude=/usr/share/$p/*")
done
# sync-in/sync-out keep the downloaded .debs between builds (--skip=essential/unlink: else
# the essential ones are deleted before sync-out).
mkdir -p "$WORK/debs"
mmdebstrap --variant=minbase --include="$(IFS=,; echo "${PACKAGES[*]}")" \
    "${excludes[@]}" --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --aptopt='Acquire::Languages "none"' \
    --skip=essential/unlink \
    --setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
    --setup-hook="sync-in '$DEBS' /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives '$WORK/debs'" \
    bookworm "$ROOT" \
    "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" \
    "deb $SECURITY bookworm-security main"
# keep only the installed version of each package in the cache
dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f='${Package}_${Version}_${Architecture}.deb\n' \
    | sed 's/:/%3a/' | sort > "$WORK/wanted"
for deb in "$WORK"/debs/*.deb; do
    grep -qxF "${deb##*/}" "$WORK/wanted" || rm -f "$deb"
done
rm -rf "$DEBS" && mv "$WORK/debs" "$DEBS"
log "$(wc -l < "$WORK/wanted") packages, $(du -sm "$ROOT" | cut -f1) MiB"

# --- 2. what a cloud image needs besides the packages ---------------------------
# Every VM gets its own ssh host keys (cloud-init's ssh module makes them at first boot) and
# its own machine-id (systemd, first boot).
rm -f "$ROOT"/etc/ssh/ssh_host_*
: > "$ROOT/etc/machine-id"
echo "LABEL=$ROOT_LABEL / ext4 rw,discard,errors=remount-ro 0 1" > "$ROOT/etc/fstab"
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' > "$ROOT/etc/hosts"
echo debian > "$ROOT/etc/hostname"
# The locale Debian's cloud images set: built into glibc, so cloud-init's locale module finds
# it in place and generates nothing (the image has no locale definitions to generate from).
echo LANG=C.UTF-8 > "$ROOT/etc/default/locale"
KERNEL=$(find "$ROOT/boot" -name 'vmlinuz-*' | sort -V | tail -n 1)
[ -n "$KERNEL" ] || die "no kernel in $ROOT/boot"
INITRD="$ROOT/boot/initrd.img-${KERNEL##*/vmlinuz-}"
[ -f "$INITRD" ] || die "no initrd for $KERNEL"
log "kernel ${KERNEL##*/}, initrd $(du -k "$INITRD" | cut -f1) KiB"

# --- 3. the disk: FAT16 boot partition with syslinux, ext4 root partition -------
ROOT_USED=$(du -sm "$ROOT" | cut -f1)
ROOT_MIB=$(( ROOT_USED + ROOT_USED / 2 + 256 ))   # room for the guest to write
BOOT_SECTORS=$(( BOOT_MIB * 2048 ))
ROOT_START=$(( PART_START + BOOT_SECTORS ))
DISK_MIB=$(( 1 + BOOT_MIB + ROOT_MIB ))
log "building disk: ${DISK_MIB} MiB, root file system ${ROOT_MIB} MiB"
cat > "$WORK/syslinux.cfg" <<EOF
SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL /vmlinuz
  INITRD /initrd.img
  APPEND root=LABEL=$ROOT_LABEL ro console=tty0 console=ttyS0,115200
EOF
export MTOOLS_SKIP_CHECK=1
truncate -s $(( BOOT_SECTORS * 512 )) "$WORK/fat.img"
mkfs.vfat -F 16 -n UCLOUDBOOT -h "$PART_START" "$WORK/fat.img" >/dev/null
cp "$KERNEL" "$WORK/vmlinuz"
cp "$INITRD" "$WORK/initrd.img"
mcopy -i "$WORK/fat.img" "$WORK/vmlinuz" "$WORK/initrd.img" "$WORK/syslinux.cfg" ::/
syslinux --install "$WORK/fat.img"

truncate -s "${DISK_MIB}M" "$WORK/disk.raw"
printf 'label: dos\nstart=%d, size=%d, type=6, bootable\nstart=%d, type=83\n' \
    "$PART_START" "$BOOT_SECTORS" "$ROOT_START" | sfdisk -q "$WORK/disk.raw"
dd if="$MBR_BIN" of="$WORK/disk.raw" bs=440 count=1 conv=notrunc status=none
dd if="$WORK/fat.img" of="$WORK/disk.raw" bs=512 seek="$PART_START" conv=notrunc status=none
# the ext4 file system straight into partition 2 of the disk file, filled from the directory
mkfs.ext4 -q -F -L "$ROOT_LABEL" -d "$ROOT" -E offset=$(( ROOT_START * 512 )) \
    "$WORK/disk.raw" "${ROOT_MIB}M"

# write next to OUTPUT, then rename: a VM using the old image keeps its inode
OUTTMP="$(dirname "$OUTPUT")/.$(basename "$OUTPUT").tmp.$$"
qemu-img convert -f raw -O qcow2 "$WORK/disk.raw" "$OUTTMP"
mv -f "$OUTTMP" "$OUTPUT"
OUTTMP=""
log "wrote $OUTPUT ($(du -m "$OUTPUT" | cut -f1) MiB) in $(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }') s"
