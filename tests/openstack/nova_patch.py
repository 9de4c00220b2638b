#!/usr/bin/python3
"""Loads the code that contrib/openstack/nova/*.patch adds to Nova
stable/wallaby and runs it against Debian's python3-nova (26.x), whose
nova.virt.libvirt.config still hosts it unchanged (LibvirtConfigObject,
LibvirtConfigGuestDevice, lxml).

  nova_patch.py config                 the config class: XML out and back,
                                       inside a whole guest's domain XML
  nova_patch.py backend SOCKET UUID    prints vtpm_backend(UUID) (or None),
                                       or "VtpmdUnavailable: ..." and exits 3
"""
import glob
import os
import re
import sys
import types
import warnings

warnings.filterwarnings("ignore")

HERE = os.path.dirname(os.path.abspath(__file__))
PATCH = glob.glob(os.path.join(HERE, "..", "..", "contrib", "openstack", "nova", "*.patch"))


def added_lines(path_in_tree):
    """The '+' lines of the patch's hunks for one file."""
    text = open(PATCH[0]).read()
    out, on = [], False
    for line in text.splitlines():
        if line.startswith("diff --git "):
            on = line.endswith(" b/" + path_in_tree)
        elif on and line.startswith("+") and not line.startswith("+++"):
            out.append(line[1:])
    return out


def load_config_class():
    from nova.virt.libvirt import config
    lines = added_lines("nova/virt/libvirt/config.py")
    src = "\n".join(lines)
    assert "class LibvirtConfigGuestXenVTPM(LibvirtConfigGuestDevice):" in src, src
    ns = dict(vars(config))
    exec(compile(src, "patch:config.py", "exec"), ns)
    return config, ns["LibvirtConfigGuestXenVTPM"]


def load_client():
    src = "\n".join(added_lines("nova/virt/libvirt/vtpmd.py"))
    mod = types.ModuleType("nova_vtpmd_patch")
    exec(compile(src, "patch:vtpmd.py", "exec"), mod.__dict__)
    return mod


def test_config():
    from lxml import etree
    config, cls = load_config_class()
    dev = cls("vtpm-0f8fad5b-d9cb-469f-a165-70867728950e")
    assert isinstance(dev, config.LibvirtConfigGuestDevice)
    xml = dev.to_xml()
    assert xml.strip() == '<vtpm backend="vtpm-0f8fad5b-d9cb-469f-a165-70867728950e"/>', xml
    back = cls()
    back.parse_str(xml)
    assert back.backend == dev.backend, back.backend
    # Hostile names are escaped by lxml, never spliced.
    odd = cls("a'b\"<c>&").to_xml()
    assert etree.fromstring(odd).get("backend") == "a'b\"<c>&", odd
    # In a whole guest: Nova's own config objects around it.
    guest = config.LibvirtConfigGuest()
    guest.virt_type = "xen"
    guest.name = "instance-0000002a"
    guest.uuid = "0f8fad5b-d9cb-469f-a165-70867728950e"
    guest.memory = 524288
    guest.vcpus = 1
    guest.os_type = "linux"
    disk = config.LibvirtConfigGuestDisk()
    disk.source_type = "file"
    disk.source_path = "/var/lib/nova/instances/x/disk"
    disk.target_dev = "xvda"
    disk.target_bus = "xen"
    guest.add_device(disk)
    guest.add_device(dev)
    doc = etree.fromstring(guest.to_xml())
    vt = doc.findall("./devices/vtpm")
    assert len(vt) == 1 and vt[0].get("backend") == dev.backend, guest.to_xml()
    # Not QEMU's <tpm> (LibvirtConfigGuestVTPM), which it must not shadow.
    assert config.LibvirtConfigGuestVTPM is not cls
    assert doc.find("./devices/tpm") is None
    print("config class ok")


def main():
    if not PATCH:
        sys.exit("no patch under contrib/openstack/nova")
    if sys.argv[1] == "config":
        test_config()
        return 0
    if sys.argv[1] == "backend":
        client = load_client()
        try:
            print(client.vtpm_backend(sys.argv[3], socket_path=sys.argv[2]))
        except client.VtpmdUnavailable as e:
            print("VtpmdUnavailable: %s" % e)
            return 3
        return 0
    sys.exit("usage")


if __name__ == "__main__":
    sys.exit(main())
