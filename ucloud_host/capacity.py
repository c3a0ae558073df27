"""What ucloud-host reports: capacity (config overrides win over the measured facts) and usage.
The measuring is the host facts driver's (ucloud_host/driver.py); this module never asks the
platform itself."""

from pathlib import Path

from common.config import Config
from common.records import Capacity, Usage
from ucloud_host.driver import HostFacts


def _existing_parent(path: str) -> str:
    current = Path(path)
    while not current.exists():
        current = current.parent
    return str(current)


def detect(config: Config, facts: HostFacts) -> Capacity:
    """Capacity: config overrides (host_cpu, host_ram, host_disk) win over detection."""
    return {
        "cpu": config.host_cpu or facts.cpus(),
        "ram": config.host_ram or facts.memory().total,
        "disk": config.host_disk or facts.filesystem(_existing_parent(config.image_dir)).total,
    }


def usage(config: Config, facts: HostFacts) -> Usage:
    """Measured use, for operators (placement uses the allocations, not this)."""
    return {
        "load1": round(facts.load(), 2),
        "ram_used": facts.memory().used,
        "disk_used": facts.filesystem(_existing_parent(config.image_dir)).used,
    }
