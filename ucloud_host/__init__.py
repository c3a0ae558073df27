"""ucloud-host: registers this host, its capacity and usage, and holds its liveness lease."""
