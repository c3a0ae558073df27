"""Code shared by every ucloud daemon: config, the etcd store, validation, units, auth, logging,
metrics. Nothing in here may import a daemon package (ucloud_*)."""
