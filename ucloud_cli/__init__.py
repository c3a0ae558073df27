"""ucloud-cli: the command line over the REST API (docs/cli.md)."""
