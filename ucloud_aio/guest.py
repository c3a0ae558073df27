"""The tiny test guest (guest/build-tiny-image.sh), built once and cached."""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO / "guest" / "build-tiny-image.sh"
READY_MARKER = "UCLOUD-GUEST-READY"


def cache_dir() -> Path:
    return Path(os.environ.get("UCLOUD_GUEST_CACHE") or Path.home() / ".cache" / "ucloud-guest")


def ensure_tiny_image() -> Path:
    """The cached tiny image, (re)built when missing or older than its build script."""
    image = cache_dir() / "tiny.qcow2"
    if not image.exists() or image.stat().st_mtime < BUILD_SCRIPT.stat().st_mtime:
        image.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(BUILD_SCRIPT), str(image)],
            check=True,
            env={**os.environ, "UCLOUD_GUEST_CACHE": str(cache_dir())},
        )
    return image
