#!/usr/bin/python3
"""A guest's domain XML and its vTPM secret's XML as Nova 26's libvirt
driver writes them for a flavor with hw:tpm_version=2.0, built with Nova's
own classes (nova.virt.hardware, nova.virt.libvirt.config).

usage: nova_guest_xml.py UUID NAME SECRET_UUID OUTDIR
writes OUTDIR/guest.xml and OUTDIR/secret.xml"""
import os
import sys
import warnings

warnings.filterwarnings("ignore")

from nova import objects  # noqa: E402
from nova.virt import hardware  # noqa: E402
from nova.virt.libvirt import config as vconfig  # noqa: E402


def main():
    uuid, name, secret_uuid, out = sys.argv[1:5]
    objects.register_all()
    flavor = objects.Flavor(name='m1.vtpm', memory_mb=64, vcpus=1,
                            root_gb=0, ephemeral_gb=0, swap=0,
                            extra_specs={'hw:tpm_version': '2.0',
                                         'hw:tpm_model': 'tpm-crb'})
    image_meta = objects.ImageMeta.from_dict({'properties': {}})
    vtpm_config = hardware.get_vtpm_constraint(flavor, image_meta)
    if vtpm_config is None:
        sys.exit("Nova asks for no vTPM for this flavor")

    guest = vconfig.LibvirtConfigGuest()
    guest.virt_type = 'qemu'
    guest.name = name
    guest.uuid = uuid
    guest.memory = flavor.memory_mb * 1024
    guest.vcpus = flavor.vcpus
    guest.os_type = 'hvm'
    guest.os_mach_type = 'pc'
    # As LibvirtDriver._add_vtpm_device does.
    guest.add_device(vconfig.LibvirtConfigGuestVTPM(vtpm_config, secret_uuid))

    # As nova.virt.libvirt.host.Host.create_secret('vtpm', ...) does.
    secret = vconfig.LibvirtConfigSecret()
    secret.uuid = secret_uuid
    secret.ephemeral = False
    secret.private = False
    secret.usage_type = 'vtpm'
    secret.usage_id = name
    secret.description = '%s vtpm' % name

    with open(os.path.join(out, 'guest.xml'), 'w') as f:
        f.write(guest.to_xml())
    with open(os.path.join(out, 'secret.xml'), 'w') as f:
        f.write(secret.to_xml())


if __name__ == '__main__':
    main()
