"""ucloud-cli: the command line over the REST API (DESIGN §6)."""
