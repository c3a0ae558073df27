"""Inspecting image files with `qemu-img info` before anything trusts them.

An uploaded or registered image is hostile until proven otherwise: a qcow2 file may name a backing
file or an external data file, and qemu would then read *host* files into the guest. Only plain,
self-contained qcow2 files pass.
"""

import json
import subprocess
from dataclasses import dataclass

from common.errors import InvalidInput


@dataclass(frozen=True)
class ImageInfo:
    format: str
    virtual_size: int
    actual_size: int
    location: str = ""  # where an image store keeps it (set by ImageStore.import_image)


def _qemu_img(command: str, path: str, timeout: float) -> tuple[int, dict, str]:
    """Run `qemu-img <command>` with JSON output on a qcow2 file: (exit status, JSON, stderr).
    -U reads even if a VM has the file open; -f qcow2 never lets qemu probe the format."""
    try:
        result = subprocess.run(
            ["qemu-img", command, "-U", "--output=json", "-f", "qcow2", path],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InvalidInput(f"{path}: qemu-img {command} timed out") from None
    try:
        report = json.loads(result.stdout) if result.stdout.strip() else {}
    except json.JSONDecodeError:
        report = {}
    return result.returncode, report, result.stderr.strip()


def inspect_qcow2(path: str, name: str = "") -> ImageInfo:
    """ImageInfo of a safe qcow2 file, or InvalidInput saying why it is refused. Messages call
    the file `name` (default: its path), e.g. the source a caller knows instead of a copy."""
    name = name or path
    status, info, errors = _qemu_img("info", path, timeout=30)
    if status != 0 or not info:
        reason = errors.splitlines()[-1] if errors else "unreadable"
        raise InvalidInput(f"{name}: not a usable qcow2 image ({reason})")
    if info.get("format") != "qcow2":
        raise InvalidInput(f"{name}: format is {info.get('format')!r}, expected qcow2")
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise InvalidInput(f"{name}: refused: the image names a backing file")
    specific = (info.get("format-specific") or {}).get("data") or {}
    if specific.get("data-file") or specific.get("data-file-raw"):
        raise InvalidInput(f"{name}: refused: the image uses an external data file")
    if specific.get("corrupt"):
        raise InvalidInput(f"{name}: refused: the image is marked corrupt")
    # `qemu-img check` catches truncated and corrupted files that `info` still reads.
    # Exit 0: clean; 3: only leaked clusters (harmless); anything else: corrupt or unreadable.
    status, report, _ = _qemu_img("check", path, timeout=300)
    if status not in (0, 3) or report.get("corruptions") or report.get("check-errors"):
        raise InvalidInput(f"{name}: refused: the image is truncated or corrupt")
    return ImageInfo("qcow2", int(info["virtual-size"]), int(info.get("actual-size", 0)))
