"""ucloud-api: the REST API (DESIGN §5). Validates, authenticates, authorises and writes desired
state to etcd; never talks to hosts directly."""
