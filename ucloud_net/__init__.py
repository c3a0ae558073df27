"""ucloud-net: on every host, one VXLAN + bridge per network that has a VM here, a tap per VM
NIC, and head-end replication entries to the other hosts carrying the network."""
