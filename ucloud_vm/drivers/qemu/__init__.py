"""The qemu/KVM driver: argv.py builds the command line (pure), qmp.py talks QMP, accel.py probes
KVM, driver.py puts them together."""
