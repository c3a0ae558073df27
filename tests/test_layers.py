"""Nothing above a driver asks the platform (so ucloud can gain FreeBSD drivers without touching
the daemons). Every module under common/ and ucloud_*/ outside a `drivers` package is parsed
with ast and must not import a platform module, use a Linux-only socket name, import a
concrete driver module (drivers are chosen through their package's registry), or name a path
into the kernel's pseudo filesystems or devices.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Platform: a module that exists only on some systems, speaks one kernel's interface or is one
# backend's client library. pyroute2: Linux netlink; nftables: the Linux firewall; rados, rbd:
# Ceph's client libraries; fcntl: file locks and ioctls (the way to device-specific calls such
# as TUNSETIFF); qemu: the qemu.qmp package, one hypervisor's client.
# Not platform: socket.if_nametoindex and binds with a scope id (the standard IPv6 sockets API,
# RFC 3493, on FreeBSD as on Linux), os.cpu_count, subprocess.
PLATFORM_MODULES = {"pyroute2", "nftables", "rados", "rbd", "fcntl", "qemu"}
# Linux-only socket API: a device-bound socket, netlink and packet sockets.
PLATFORM_NAMES = {"SO_BINDTODEVICE", "AF_NETLINK", "AF_PACKET"}
# Paths into /proc, /sys and /dev (FreeBSD has no /sys, another /proc, other device names).
PLATFORM_PATHS = ("/proc", "/sys", "/dev")
UNCHECKED = {
    # The all-in-one lab runner: a Linux test bench (network namespaces made with `ip`,
    # processes found in /proc), never part of a host's installation. (ucloud_cli is checked:
    # a client needs nothing of the platform.)
    "ucloud_aio",
}


def checked_files() -> list[Path]:
    paths = [*ROOT.glob("common/**/*.py"), *ROOT.glob("ucloud_*/**/*.py")]
    return sorted(
        p.relative_to(ROOT) for p in paths if p.relative_to(ROOT).parts[0] not in UNCHECKED
    )


def _is_driver_module(name: str) -> bool:
    """`<package>.drivers.<something>` that is a module of this repository (not the registry
    in `<package>/drivers/__init__.py`, nor a name imported from it)."""
    parts = name.split(".")
    if "drivers" not in parts[:-1]:
        return False
    path = ROOT.joinpath(*parts)
    return path.is_dir() or path.with_suffix(".py").exists()


def _imports(tree: ast.AST) -> list[tuple[int, list[str]]]:
    """Per import statement: its line and the dotted names it may load."""
    statements = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            statements.append((node.lineno, [alias.name for alias in node.names]))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            statements.append((node.lineno, [node.module, *names]))
    return statements


def violations(path: Path, source: str) -> list[str]:
    """What `path` (relative to the repository) does that only a driver may do."""
    if "drivers" in path.parts[:-1]:
        return []
    tree = ast.parse(source, str(path))
    found = []
    for line, names in _imports(tree):
        if platform := [name for name in names if name.split(".")[0] in PLATFORM_MODULES]:
            found.append(f"{path}:{line}: imports platform module {platform[0]}")
        elif driver := [name for name in names if _is_driver_module(name)]:
            found.append(f"{path}:{line}: imports driver {driver[0]} (use the registry)")
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if any(text == root or text.startswith(root + "/") for root in PLATFORM_PATHS):
                found.append(f"{path}:{node.lineno}: platform path {text!r}")
        name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
        if name in PLATFORM_NAMES:
            found.append(f"{path}:{node.lineno}: platform name {name}")
    return found


def test_nothing_above_a_driver_touches_the_platform() -> None:
    files = checked_files()
    assert len(files) > 50  # the globs found the code
    found = [v for path in files for v in violations(path, (ROOT / path).read_text())]
    assert not found, "\n".join(found)


def test_the_check_finds_each_kind_and_spares_drivers() -> None:
    source = (
        "import fcntl\n"
        "from qemu.qmp import QMPClient\n"
        "from pyroute2.netlink.exceptions import NetlinkError\n"
        "from ucloud_net.drivers import linux\n"
        "import ucloud_host.drivers.linux\n"
        "from ucloud_host.drivers import HOST_FACTS\n"  # the registry: allowed
        "MEMINFO = '/proc/meminfo'\n"
        "def accept_ra(name): return f'/proc/sys/net/ipv6/conf/{name}/accept_ra'\n"
        "PROC, KVM, PATHLIKE = '/proc', '/dev/kvm', '/proceed'\n"
        "OPTION = socket.SO_BINDTODEVICE\n"
    )
    found = violations(Path("ucloud_x/agent.py"), source)
    assert len(found) == 10, "\n".join(found)
    assert violations(Path("ucloud_x/drivers/linux.py"), source) == []
