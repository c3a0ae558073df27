"""ucloud-firewall: on every host, what VMs may send (anti-spoofing on every VM port), what may
reach them (per-VM ingress rules) and what may reach the host itself from tenant networks and
the underlay. docs/firewall.md explains each rule."""
