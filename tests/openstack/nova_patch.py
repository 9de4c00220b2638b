#!/usr/bin/python3
"""Runs the vtpmd client that contrib/openstack/nova/*.patch adds to Nova
stable/victoria, from a patched Nova 22 tree, against a real vtpmd.

  nova_patch.py TREE SOCKET UUID [TIMEOUT]

TREE holds the patched nova/ package (it comes first on sys.path, before
Debian 12's python3-nova). Sets [libvirt] vtpmd_socket = SOCKET (and
vtpmd_timeout = TIMEOUT) and prints get_vtpm_backend(UUID): the stub
domain's name, or None. On VtpmdUnavailable it prints
"VtpmdUnavailable: ..." and exits 3.
"""
import os
import sys
import warnings

warnings.filterwarnings("ignore")


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    tree, sock, uuid = sys.argv[1:4]
    sys.path.insert(0, os.path.abspath(tree))
    import nova.conf
    from nova import exception
    from nova.virt.libvirt import vtpmd

    here = os.path.dirname(os.path.abspath(nova.conf.__file__))
    if not here.startswith(os.path.abspath(tree)):
        sys.exit("nova imported from %s, not from %s" % (here, tree))
    conf = nova.conf.CONF
    conf([], project="nova", default_config_files=[])
    conf.set_override("vtpmd_socket", sock, group="libvirt")
    if len(sys.argv) == 5:
        conf.set_override("vtpmd_timeout", int(sys.argv[4]), group="libvirt")
    try:
        print(vtpmd.get_vtpm_backend(uuid))
    except exception.VtpmdUnavailable as e:
        print("VtpmdUnavailable: %s" % e)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
