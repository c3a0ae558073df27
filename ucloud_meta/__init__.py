"""ucloud-meta: the metadata service for the VMs of one host (ssh keys, user data)."""
