"""ucloud-aio: a complete cloud on one machine (DESIGN §6a). Also the process management the
test suite uses as its fixtures, so users and tests run the same code."""
