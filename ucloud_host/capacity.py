"""What this machine offers and uses (Linux /proc; other platforms add their own probes)."""

import os
from pathlib import Path
from typing import Any


def _meminfo() -> dict[str, int]:
    values = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            values[name] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    return values


def _existing_parent(path: str) -> str:
    current = Path(path)
    while not current.exists():
        current = current.parent
    return str(current)


def detect(config: Any) -> dict[str, int]:
    """Capacity: config overrides (host_cpu, host_ram, host_disk) win over detection."""
    stat = os.statvfs(_existing_parent(config.image_dir))
    return {
        "cpu": config.host_cpu or os.cpu_count() or 1,
        "ram": config.host_ram or _meminfo()["MemTotal"],
        "disk": config.host_disk or stat.f_blocks * stat.f_frsize,
    }


def usage(config: Any) -> dict[str, Any]:
    """Measured use, for operators (placement uses the allocations, not this)."""
    memory = _meminfo()
    stat = os.statvfs(_existing_parent(config.image_dir))
    return {
        "load1": round(os.getloadavg()[0], 2),
        "ram_used": memory["MemTotal"] - memory.get("MemAvailable", memory["MemFree"]),
        "disk_used": (stat.f_blocks - stat.f_bavail) * stat.f_frsize,
    }
