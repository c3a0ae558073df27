"""ucloud-api: the REST API (docs/api.md). Validates, authenticates, authorises and writes desired
state to etcd; never talks to hosts directly."""
