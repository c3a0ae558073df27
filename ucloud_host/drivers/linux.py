"""Linux host facts: /proc/meminfo, statvfs, the load average. Measures only: what ucloud-host
reports (config overrides, which path) is capacity.py's."""

import os
from pathlib import Path

from common.config import Config
from ucloud_host.driver import HostFacts, Space


class LinuxHostFacts(HostFacts):
    @classmethod
    def from_config(cls, config: Config) -> "LinuxHostFacts":
        return cls()

    def cpus(self) -> int:
        return os.cpu_count() or 1

    def memory(self) -> Space:
        values = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                values[name] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
        total = values["MemTotal"]
        return Space(total, total - values.get("MemAvailable", values["MemFree"]))

    def filesystem(self, path: str) -> Space:
        stat = os.statvfs(path)
        return Space(stat.f_blocks * stat.f_frsize, (stat.f_blocks - stat.f_bavail) * stat.f_frsize)

    def load(self) -> float:
        return os.getloadavg()[0]
