"""Tenant links drivers for ucloud-ipam and ucloud-meta, chosen at start-up by name
(`network_driver` in the config: the same platform name as ucloud-net's network driver). Names
only: a driver module is imported when chosen, never here."""

from common.registry import Registry
from common.tenantlinks import TenantLinks

TENANT_LINKS: Registry[TenantLinks] = Registry(
    "network", "network_driver", {"linux": "common.drivers.linux_links:LinuxTenantLinks"}
)
