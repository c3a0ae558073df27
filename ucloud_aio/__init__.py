"""ucloud-aio: a complete cloud on one machine (docs/aio.md). Also the process management the
test suite uses as its fixtures, so users and tests run the same code."""
