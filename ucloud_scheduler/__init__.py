"""ucloud-scheduler: places PENDING VMs on ALIVE hosts that fit (one elected leader acts),
and marks hosts DEAD when their liveness key disappears. See README.md in this package."""
