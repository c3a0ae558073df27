#!/usr/bin/env bash
# Installs everything ucloud needs on a Debian 12 machine (run as root):
# the apt packages, and a Python venv in .venv with the pinned requirements.
# Idempotent and non-interactive: a second run only checks and returns.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
    # control plane
    etcd-server etcd-client
    # python venv for the daemons
    python3 python3-venv python3-dev
    # hosts: processes, namespaces, links
    iproute2 procps psmisc
    # ucloud-firewall's Linux driver
    nftables
    # hypervisor and images
    qemu-system-x86 qemu-utils
    # the Ceph RBD image store: client library and tools, qemu's rbd block driver; mon and osd
    # for the single-node test cluster of `ucloud-aio up --ceph` and the tests (ucloud_aio/ceph.py)
    ceph-common python3-rados python3-rbd qemu-block-extra ceph-mon ceph-osd
    # offline test guest image build (guest/build-tiny-image.sh)
    busybox-static cpio syslinux syslinux-common mtools dosfstools fdisk
    # Debian 12 cloud image build (guest/build-debian-image.sh) and the ssh client its test uses
    mmdebstrap e2fsprogs openssh-client
    # users and ssh keys from LDAP: python-ldap's build deps; slapd for the tests' throwaway one
    libldap2-dev libsasl2-dev gcc slapd ldap-utils
    # handy for debugging serial consoles and sockets
    socat
    # load generators for bench/: HTTP, TCP
    wrk iperf3
    # `systemd-analyze verify` checks the units in contrib/systemd/ (tests/test_units.py)
    systemd
)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
    installed "$p" || missing+=("$p")
done

# Debian's slapd package creates a system directory (dc=nodomain, ldap:/// on every address),
# enables it at boot and starts it, unless a policy-rc.d forbids starting services (as in most
# containers). ucloud needs none: its tests run throwaway slapds and the real directory is
# wherever ldap_uri points. Debian's init script (which systemd's slapd.service runs too) does not
# start while /etc/ldap/noslapd exists: create it before the install, and stop one running. Only
# while the system directory is absent or still the package default: one configured on purpose
# is left alone.
if ! installed slapd || grep -rqsx 'olcSuffix: dc=nodomain' /etc/ldap/slapd.d; then
    if [ ! -e /etc/ldap/noslapd ]; then
        mkdir -p /etc/ldap
        echo "# from ucloud's scripts/setup.sh: no system slapd (see there)" > /etc/ldap/noslapd
    fi
    unused_system_slapd=1
fi

if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing apt packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ -n "${unused_system_slapd:-}" ] && /etc/init.d/slapd status >/dev/null 2>&1; then
    echo "setup: stopping the system slapd (unused; /etc/ldap/noslapd keeps it off)" >&2
    /etc/init.d/slapd stop
fi

# The unprivileged user qemu runs as (qemu_user's default; docs/vm.md "Privileges"), in the kvm
# group where there is one (/dev/kvm is root:kvm 0660 under udev).
QEMU_USER=ucloud-qemu
if ! getent passwd "$QEMU_USER" >/dev/null; then
    echo "setup: creating system user $QEMU_USER" >&2
    useradd --system --no-create-home --shell /usr/sbin/nologin "$QEMU_USER"
fi
if getent group kvm >/dev/null && ! id -nG "$QEMU_USER" | grep -qw kvm; then
    usermod -a -G kvm "$QEMU_USER"
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv" >&2
    /usr/bin/python3 -m venv .venv
fi
# Reinstall only when the pins changed since the last successful install.
stamp=.venv/.ucloud-requirements
want="$(sha256sum requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing python packages" >&2
    .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
    .venv/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
    echo "$want" > "$stamp"
fi
# Ceph's Python bindings are not on PyPI: link Debian's compiled modules (built for the system
# python3, which made the venv) into the venv.
site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
for module in rados rbd; do
    for so in /usr/lib/python3/dist-packages/"$module".cpython-*.so; do
        if [ -e "$so" ]; then ln -sfn "$so" "$site/$(basename "$so")"; fi
    done
done
# The offline-built test guest (cached in ~/.cache/ucloud-guest; rebuilt when its script changes).
.venv/bin/python -c "from ucloud_aio.guest import ensure_tiny_image; ensure_tiny_image()"
echo "setup: ok" >&2
