"""ucloud-ipam on every host: router advertisements on the bridges of the host's networks, so
VMs configure their SLAAC addresses (address allocation itself is common/ipam.py, on the API)."""
