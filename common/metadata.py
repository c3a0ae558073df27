"""The metadata a VM gets, in the OpenStack and EC2 forms cloud-init reads (pure). Served over
HTTP by ucloud-meta and written to each VM's config drive by ucloud-vm: one definition for both."""

from typing import Any

from common.records import VM, VMData


def openstack_meta_data(vm: VM, data: VMData) -> dict[str, Any]:
    """openstack/latest/meta_data.json."""
    keys = data.get("ssh_keys", [])
    return {
        "uuid": vm["uuid"],
        "name": vm["name"],
        "hostname": vm["name"],
        "launch_index": 0,
        "availability_zone": "ucloud",
        "public_keys": {key["name"]: key["key"] for key in keys},
        "keys": [{"name": key["name"], "type": "ssh", "data": key["key"]} for key in keys],
    }


def ec2_meta_data(vm: VM, data: VMData) -> dict[str, Any]:
    """The EC2 meta-data tree, as OpenStack writes it to ec2/<version>/meta-data.json and serves
    it under <version>/meta-data/: a dict is a folder, a string a document. A key's `_name`
    ("0=laptop") is how its folder is listed; the key is a line, as EC2 serves it."""
    keys = data.get("ssh_keys", [])
    return {
        "instance-id": vm["uuid"],
        "hostname": vm["name"],
        "local-hostname": vm["name"],
        "public-keys": {
            str(index): {"_name": f"{index}={key['name']}", "openssh-key": f"{key['key']}\n"}
            for index, key in enumerate(keys)
        },
    }


def network_data(vm: VM) -> dict[str, Any]:
    """openstack/latest/network_data.json: every NIC by its MAC, IPv6 by SLAAC from the
    router advertisements of its network, with the network's MTU."""
    links, networks = [], []
    for index, nic in enumerate(vm.get("networks", [])):
        link = f"nic{index}"
        links.append(
            {"id": link, "type": "phy", "ethernet_mac_address": nic["mac"], "mtu": nic["mtu"]}
        )
        networks.append({"id": f"network{index}", "link": link, "type": "ipv6_slaac"})
    return {"links": links, "networks": networks, "services": []}
