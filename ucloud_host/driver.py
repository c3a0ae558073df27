"""The host facts interface: what the machine has and uses, as the platform measures it. Owns the
contract only; the drivers (ucloud_host/drivers/, chosen by `host_facts`) do the measuring, and
capacity.py decides what ucloud-host reports (config overrides win). Must not import a platform
module or read /proc."""

from abc import ABC, abstractmethod
from typing import NamedTuple


class Space(NamedTuple):
    total: int  # bytes
    used: int  # bytes not available to ucloud (for a filesystem: total - free for non-root)


class HostFacts(ABC):
    @abstractmethod
    def cpus(self) -> int:
        """Logical CPUs of the machine."""

    @abstractmethod
    def memory(self) -> Space:
        """Physical memory, and how much of it is in use (not available without swapping)."""

    @abstractmethod
    def filesystem(self, path: str) -> Space:
        """The filesystem holding `path` (which exists)."""

    @abstractmethod
    def load(self) -> float:
        """Load average over the last minute."""
