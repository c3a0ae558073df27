"""Network drivers of ucloud-net, chosen at start-up by name (`network_driver` in the config).
Names only: a driver module is imported when chosen, never here."""

from common.registry import Registry
from ucloud_net.driver import NetworkDriver

NETWORKS: Registry[NetworkDriver] = Registry(
    "network", "network_driver", {"linux": "ucloud_net.drivers.linux:LinuxNetwork"}
)
