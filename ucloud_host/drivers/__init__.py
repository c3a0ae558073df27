"""Host facts drivers, chosen at start-up by name (`host_facts` in the config). Names only: a
driver module is imported when chosen, never here."""

from common.registry import Registry
from ucloud_host.driver import HostFacts

HOST_FACTS: Registry[HostFacts] = Registry(
    "host facts", "host_facts", {"linux": "ucloud_host.drivers.linux:LinuxHostFacts"}
)
