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


def inspect_qcow2(path: str) -> ImageInfo:
    """ImageInfo of a safe qcow2 file, or InvalidInput saying why it is refused."""
    try:
        result = subprocess.run(
            # -U: read even if a VM has the file open; -f qcow2: never let qemu probe the format
            ["qemu-img", "info", "-U", "--output=json", "-f", "qcow2", path],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InvalidInput(f"{path}: qemu-img info timed out") from None
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "unreadable"
        raise InvalidInput(f"{path}: not a usable qcow2 image ({reason})")
    try:
        info = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise InvalidInput(f"{path}: qemu-img info gave no readable answer") from None
    if info.get("format") != "qcow2":
        raise InvalidInput(f"{path}: format is {info.get('format')!r}, expected qcow2")
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise InvalidInput(f"{path}: refused: the image names a backing file")
    specific = (info.get("format-specific") or {}).get("data") or {}
    if specific.get("data-file") or specific.get("data-file-raw"):
        raise InvalidInput(f"{path}: refused: the image uses an external data file")
    if specific.get("corrupt"):
        raise InvalidInput(f"{path}: refused: the image is marked corrupt")
    _check_consistent(path)
    return ImageInfo("qcow2", int(info["virtual-size"]), int(info.get("actual-size", 0)))


def _check_consistent(path: str) -> None:
    """`qemu-img check`: catches truncated and corrupted files that `info` still reads."""
    try:
        result = subprocess.run(
            ["qemu-img", "check", "-U", "--output=json", "-f", "qcow2", path],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InvalidInput(f"{path}: qemu-img check timed out") from None
    try:
        report = json.loads(result.stdout) if result.stdout.strip() else {}
    except json.JSONDecodeError:
        report = {}
    # exit 0: clean; 3: only leaked clusters (harmless); anything else: corrupt or unreadable
    if result.returncode not in (0, 3) or report.get("corruptions") or report.get("check-errors"):
        raise InvalidInput(f"{path}: refused: the image is truncated or corrupt")
