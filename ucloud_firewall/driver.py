"""The firewall driver interface (nft on Linux, pf on the BSDs). The agent above it never
imports a platform module and never writes rule syntax."""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from ucloud_firewall.policy import HostPolicy


@dataclass
class Drops:
    """Packets dropped, by rule class and by port (tap)."""

    by_class: dict[str, int] = field(default_factory=dict)
    by_port: dict[str, int] = field(default_factory=dict)


class Firewall(ABC):
    @abstractmethod
    def apply(self, policy: HostPolicy) -> bool:
        """Make the rules in force match the policy, in one atomic step: there is never a
        moment without protection (no flush in one step and a fill in another). Counters of
        drops survive. Returns False when nothing needed changing."""

    @abstractmethod
    def drops(self) -> Drops:
        """The drop counters now."""

    @abstractmethod
    def remove(self) -> None:
        """Take every ucloud rule away (a host leaving the cloud); idempotent."""
