"""The test guests: the tiny one (guest/build-tiny-image.sh) and a Debian 12 cloud image
(guest/build-debian-image.sh), each built once and cached."""

import hashlib
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO / "guest" / "build-tiny-image.sh"
DEBIAN_SCRIPT = REPO / "guest" / "build-debian-image.sh"
READY_MARKER = "UCLOUD-GUEST-READY"


def cache_dir() -> Path:
    return Path(os.environ.get("UCLOUD_GUEST_CACHE") or Path.home() / ".cache" / "ucloud-guest")


def _build(script: Path, image: Path) -> None:
    image.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(script), str(image)],
        check=True,
        env={**os.environ, "UCLOUD_GUEST_CACHE": str(cache_dir())},
    )


def ensure_tiny_image() -> Path:
    """The cached tiny image, (re)built when missing or older than its build script."""
    image = cache_dir() / "tiny.qcow2"
    if not image.exists() or image.stat().st_mtime < BUILD_SCRIPT.stat().st_mtime:
        _build(BUILD_SCRIPT, image)
    return image


def ensure_debian_image() -> Path:
    """The cached Debian image, named by its build script's hash: built again only when the
    script changes (a checkout's mtime says nothing on a fresh CI machine, and the build takes
    minutes). Images of older scripts are removed."""
    digest = hashlib.sha256(DEBIAN_SCRIPT.read_bytes()).hexdigest()[:12]
    image = cache_dir() / f"debian-12-{digest}.qcow2"
    if not image.exists():
        _build(DEBIAN_SCRIPT, image)
        for old in cache_dir().glob("debian-12-*.qcow2"):
            if old != image:
                old.unlink(missing_ok=True)
    return image
