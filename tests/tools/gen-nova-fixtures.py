#!/usr/bin/python3
"""Generates genuine Nova notifications for vtpmd's decoder tests.

Nova's own code builds and sends them: nova.compute.utils
(notify_about_instance_usage for the legacy format, notify_about_instance_
create / notify_about_instance_action / notify_about_instance_delete for the
versioned one, notify_usage_exists), nova.notifications.send_update_with_
states, with instances from nova.tests.unit.fake_instance, published through
oslo.messaging's RabbitMQ driver (kombu) exactly as nova-compute and nova-api
publish them. Each body is captured as it left the driver, with its AMQP
content type and routing key:

  --broker amqp://...   publish to a real RabbitMQ and read the bodies back
                        from the queues oslo.messaging declares (pika);
  (default)             kombu's in-memory transport, no broker needed.

Writes OUT/genuine/*.json (one AMQP body each, byte for byte) and
OUT/index.json: per message its routing key, content type, and what vtpmd
must make of it ("expect"), derived from the scenario, not from the message.

Usage: gen-nova-fixtures.py [--broker URL] [--out DIR]
Run with Debian's /usr/bin/python3 (python3-nova, python3-oslo.messaging).
"""

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time

# Hosts: THIS is the host under test, OTHER another compute host, API the
# controller that runs nova-api.
THIS = "compute1"
OTHER = "compute2"
API = "controller"
HOSTS = [THIS, OTHER, API]

PROJECT = "6f70656e737461636b20342065766572"
USER = "3b8a4f0c2d5e4a6b9c1d7e8f0a2b4c6d"
REQUEST_ID = "req-5b6c791d-5709-4f36-8fbe-c3e02869e35d"

TPM_SPECS = {"hw:tpm_version": "2.0", "hw:tpm_model": "tpm-tis",
             "hw:cpu_policy": "shared"}
TPM_IMAGE = {"hw_tpm_version": "2.0", "os_distro": "ubuntu",
             "hw_machine_type": "xenpv"}
METADATA = {"vtpm": "yes", "owner": "alice"}

INSTANCES = {
    # name: (uuid, db id, project, flavor, extra specs, image props, metadata)
    "a": ("5f0e8c1a-3b7d-4e2f-9a6c-8d4b2e1f0a37", 42, PROJECT, "vtpm.small",
          TPM_SPECS, TPM_IMAGE, METADATA),
    "b": ("0b5e7d1c-9f2a-4c3e-8b6d-2a4f6c8e0d1b", 43, PROJECT, "m1.small",
          {}, {"os_distro": "cirros"}, {}),
    "c": ("9d3c5b7a-1e2f-4a6b-8c0d-3e5f7a9b1c2d", 44,
          "b1c2d3e4f5a6478990a1b2c3d4e5f6a7", "m1.tiny", {"hw:mem_page_size": "small"},
          {}, {"purpose": "never scheduled"}),
    "d": ("c4e6a8b0-2d4f-4e6a-9c8b-7d5f3b1a9e0c", 45, PROJECT, "vtpm.small",
          TPM_SPECS, TPM_IMAGE, {"vtpm": "yes"}),
    "n": ("2a4c6e8f-0b1d-4f3a-8e5c-7b9d1f3a5c7e", 46,
          "f00dfacef00dfacef00dfacef00dface", "m1.large", {"quota:disk_read_bytes_sec": "10240000"},
          {"os_distro": "debian"}, {"app": "web", "tier": "frontend"}),
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--broker", help="amqp:// URL of a RabbitMQ to publish through")
    p.add_argument("--out", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "nova"))
    return p.parse_args()


def configure(transport_url):
    """Nova's configuration, as a compute host with notification_format=both."""
    conf_file = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
    conf_file.write(
        "[DEFAULT]\n"
        "host = %s\n"
        "transport_url = %s\n"
        "instance_name_template = instance-%%08x\n"
        "[oslo_messaging_notifications]\n"
        "driver = messagingv2\n"
        "topics = notifications\n"
        "[notifications]\n"
        "notification_format = both\n"
        "notify_on_state_change = vm_and_task_state\n"
        "bdms_in_notifications = false\n"
        "[oslo_messaging_rabbit]\n"
        "heartbeat_timeout_threshold = 0\n" % (THIS, transport_url))
    conf_file.close()
    import nova.conf
    conf = nova.conf.CONF
    conf([], project="nova", default_config_files=[conf_file.name])
    os.unlink(conf_file.name)
    return conf


class MemoryCapture:
    """Reads what oslo.messaging published to kombu's in-memory broker."""

    def __init__(self):
        import kombu
        self.conn = kombu.Connection("memory://")
        self.chan = self.conn.channel()

    def drain(self, queues):
        got = []
        for q in queues:
            while True:
                try:
                    m = self.chan.basic_get(q)
                except Exception:  # the queue does not exist yet
                    break
                if not m:
                    break
                got.append((q, m.content_type, m.content_encoding, m.body))
        return got


class BrokerCapture:
    """Reads the queues oslo.messaging declares on a real RabbitMQ."""

    def __init__(self, url):
        import pika
        self.conn = pika.BlockingConnection(pika.URLParameters(url))
        self.chan = self.conn.channel()

    def drain(self, queues):
        got = []
        for q in queues:
            while True:
                try:
                    method, props, body = self.chan.basic_get(q, auto_ack=True)
                except Exception:
                    # basic_get on a queue not declared yet closes the channel.
                    self.chan = self.conn.channel()
                    break
                if method is None:
                    break
                got.append((q, props.content_type, props.content_encoding, body))
        return got


QUEUES = ["notifications.info", "notifications.error",
          "versioned_notifications.info", "versioned_notifications.error"]


class Generator:
    def __init__(self, conf, capture, out):
        from nova import context as nova_context
        self.conf = conf
        self.capture = capture
        self.out = out
        self.entries = []
        self.seq = 0
        self.ctx = nova_context.RequestContext(
            USER, PROJECT, request_id=REQUEST_ID, user_name="alice",
            project_name="attestation")

    def set_host(self, host):
        self.conf.set_override("host", host)

    def instance(self, key, host, vm_state="building", task_state=None,
                 display_name=None):
        from nova import objects
        from nova.tests.unit import fake_instance
        uuid, dbid, project, flavor_name, specs, image, meta = INSTANCES[key]
        flavor = objects.Flavor(
            id=dbid % 7 + 1, name=flavor_name, memory_mb=512, vcpus=1,
            root_gb=1, ephemeral_gb=0, flavorid=flavor_name + "-id", swap=0,
            rxtx_factor=1.0, vcpu_weight=0, disabled=False, is_public=True,
            extra_specs=dict(specs), projects=[], description=None)
        sysmeta = {"image_" + k: v for k, v in image.items()}
        sysmeta.update({"image_base_image_ref": "155d900f-4e14-4e4c-a73d-069cbf4541e6",
                        "image_min_ram": "0", "image_min_disk": "1",
                        "image_disk_format": "qcow2",
                        "image_container_format": "bare"})
        inst = fake_instance.fake_instance_obj(
            self.ctx, flavor=flavor, id=dbid, uuid=uuid, host=host,
            node=host and host + ".example.net",
            project_id=project, user_id=USER,
            display_name=display_name or "guest-%s" % key,
            hostname="guest-%s" % key, vm_state=vm_state,
            task_state=task_state, power_state=0,
            image_ref="155d900f-4e14-4e4c-a73d-069cbf4541e6",
            availability_zone="nova", reservation_id="r-%08d" % dbid,
            launched_at=None, architecture="x86_64",
            created_at=datetime.datetime(2024, 5, 14, 9, 30, 0),
            key_name=None, locked=False, auto_disk_config=False,
            expected_attrs=["metadata", "system_metadata", "info_cache",
                            "security_groups", "tags", "trusted_certs",
                            "pci_devices"],
            metadata=dict(meta), system_metadata=sysmeta)
        return inst

    def emit(self, scenario, fn, expect):
        """Runs one Nova call that publishes exactly one notification."""
        from oslo_utils import timeutils
        timeutils.advance_time_seconds(1.5)
        fn()
        got = []
        for _ in range(200):
            got += self.capture.drain(QUEUES)
            if got:
                break
            time.sleep(0.02)
        if len(got) != 1:
            sys.exit("gen-nova-fixtures: %s: expected 1 message, got %d"
                     % (scenario, len(got)))
        queue, ctype, cenc, body = got[0]
        outer = json.loads(body)
        # oslo.messaging's "messaging" (v1) driver sends the message bare.
        msg = json.loads(outer["oslo.message"]) if "oslo.message" in outer else outer
        fmt = "legacy" if msg["event_type"].startswith("compute.") else "versioned"
        self.seq += 1
        name = "genuine/%02d-%s-%s-%s.json" % (self.seq, scenario, fmt,
                                               msg["event_type"])
        with open(os.path.join(self.out, name), "wb") as f:
            f.write(body)
        entry = {"file": name, "scenario": scenario, "routing_key": queue,
                 "content_type": ctype, "content_encoding": cenc,
                 "format": fmt, "event_type": msg["event_type"],
                 "publisher_id": msg["publisher_id"], "size": len(body),
                 "expect": expect(fmt)}
        self.entries.append(entry)

    def expectation(self, key, kind, relevant_for, host, fault=None):
        """What vtpmd's decoder must report, from the scenario alone."""
        uuid, dbid, project, flavor_name, specs, image, meta = INSTANCES[key]

        def exp(fmt):
            e = {"kind": kind, "relevant_for": relevant_for,
                 "instance_uuid": uuid, "host": host, "project_id": project,
                 "user_id": USER, "flavor": flavor_name,
                 "metadata": meta, "request_id": REQUEST_ID,
                 "fault": fault, "format": fmt}
            if fmt == "versioned":
                e["flavor_extra_specs"] = specs
                e["image_properties"] = None
                # Only InstanceCreatePayload carries instance_name.
                e["instance_name"] = ("instance-%08x" % dbid
                                      if kind.startswith("create.") else None)
            else:
                e["flavor_extra_specs"] = None
                img = dict(image)
                img.update({"base_image_ref": "155d900f-4e14-4e4c-a73d-069cbf4541e6",
                            "min_ram": "0", "min_disk": "1",
                            "disk_format": "qcow2", "container_format": "bare"})
                e["image_properties"] = img
                e["instance_name"] = None
            return e
        return exp

    def irrelevant(self):
        def exp(fmt):
            return {"kind": "other", "relevant_for": []}
        return exp

    # Scenarios -------------------------------------------------------------

    def compute_create(self, scenario, key, host, phase, exc=None,
                       relevant_for=None, fault=None):
        """What ComputeManager._build_and_run_instance sends."""
        from nova import rpc
        from nova.compute import utils as cu
        from nova.objects import fields
        self.set_host(host)
        inst = self.instance(key, host if phase != "start" else None,
                             vm_state="building", task_state="spawning")
        notifier = rpc.get_notifier("compute", host)
        rel = relevant_for if relevant_for is not None else [host]
        exp = self.expectation(key, "create." + phase, rel, host, fault=fault)
        extra = {"image_name": "ubuntu-22.04"} if phase == "start" else \
            ({"message": "Success"} if phase == "end" else None)
        self.emit(scenario, lambda: cu.notify_about_instance_usage(
            notifier, self.ctx, inst, "create." + phase,
            extra_usage_info=extra, fault=exc), exp)
        self.emit(scenario, lambda: cu.notify_about_instance_create(
            self.ctx, inst, host, phase=getattr(fields.NotificationPhase,
                                                phase.upper()),
            exception=exc, bdms=[]), exp)

    def compute_delete(self, scenario, key, host):
        """What ComputeManager._delete_instance sends."""
        from nova import rpc
        from nova.compute import utils as cu
        from nova.objects import fields
        self.set_host(host)
        inst = self.instance(key, host, vm_state="active", task_state="deleting")
        notifier = rpc.get_notifier("compute", host)
        for phase in ("start", "end"):
            exp = self.expectation(key, "delete." + phase, [host], host)
            self.emit(scenario, lambda: cu.notify_about_instance_usage(
                notifier, self.ctx, inst, "delete." + phase), exp)
            self.emit(scenario, lambda: cu.notify_about_instance_action(
                self.ctx, inst, host, action=fields.NotificationAction.DELETE,
                phase=getattr(fields.NotificationPhase, phase.upper()),
                bdms=[]), exp)

    def api_delete(self, scenario, key, instance_host, relevant_legacy,
                   relevant_versioned, legacy_host, versioned_host):
        """What compute.api.API._delete / _local_delete send: through
        notify_about_instance_delete, from the API host."""
        from nova import rpc
        from nova.compute import utils as cu
        self.set_host(API)
        inst = self.instance(key, instance_host,
                             vm_state="error" if instance_host is None else "active",
                             task_state="deleting")
        notifier = rpc.get_notifier("compute")
        # The context manager sends legacy start, versioned start, then on
        # exit legacy end, versioned end: capture them one by one.
        pending = []
        real_usage = cu.notify_about_instance_usage
        real_action = cu.notify_about_instance_action

        def usage(*a, **kw):
            pending.append(lambda: real_usage(*a, **kw))

        def action(*a, **kw):
            pending.append(lambda: real_action(*a, **kw))
        cu.notify_about_instance_usage = usage
        cu.notify_about_instance_action = action
        try:
            with cu.notify_about_instance_delete(notifier, self.ctx, inst):
                pass
        finally:
            cu.notify_about_instance_usage = real_usage
            cu.notify_about_instance_action = real_action
        phases = ["start", "start", "end", "end"]
        for send, phase, fmt in zip(pending, phases, ["legacy", "versioned"] * 2):
            if fmt == "legacy":
                exp = self.expectation(key, "delete." + phase, relevant_legacy,
                                       legacy_host)
            else:
                exp = self.expectation(key, "delete." + phase, relevant_versioned,
                                       versioned_host)
            self.emit(scenario, send, exp)

    def noise(self, scenario, key, host):
        """Everyday notifications that are not vtpmd's business."""
        from nova import rpc
        from nova.compute import utils as cu
        from nova.notifications import base as nb
        from nova.objects import fields
        self.set_host(host)
        inst = self.instance(key, host, vm_state="active", task_state=None,
                             display_name="web-frontend-\u00e9l\u00e8ve")
        notifier = rpc.get_notifier("compute", host)
        irr = self.irrelevant()
        # send_update_with_states sends legacy compute.instance.update, then
        # the versioned instance.update: capture them apart.
        real = nb._send_versioned_instance_update
        pending = []
        nb._send_versioned_instance_update = \
            lambda *a, **kw: pending.append(lambda: real(*a, **kw))
        try:
            self.emit(scenario, lambda: nb.send_update_with_states(
                self.ctx, inst, "building", "active", "spawning", None,
                service="compute", host=host), irr)
        finally:
            nb._send_versioned_instance_update = real
        self.emit(scenario, pending[0], irr)
        for phase in ("start", "end"):
            self.emit(scenario, lambda: cu.notify_about_instance_usage(
                notifier, self.ctx, inst, "power_off." + phase), irr)
            self.emit(scenario, lambda: cu.notify_about_instance_action(
                self.ctx, inst, host, action=fields.NotificationAction.POWER_OFF,
                phase=getattr(fields.NotificationPhase, phase.upper()),
                bdms=[]), irr)
        self.emit(scenario, lambda: cu.notify_about_instance_usage(
            notifier, self.ctx, inst, "reboot.start"), irr)
        self.emit(scenario, lambda: cu.notify_about_instance_action(
            self.ctx, inst, host, action=fields.NotificationAction.REBOOT,
            phase=fields.NotificationPhase.START, bdms=[]), irr)

    def run(self):
        from nova import exception
        # A build on this host.
        self.compute_create("boot", "a", THIS, "start")
        self.compute_create("boot", "a", THIS, "end")
        # A build that fails here and is rescheduled to another host.
        # Raised for real: the versioned fault carries its traceback (kept
        # free of the checkout's path).
        ns = {}
        exec(compile("def _build_resources(exc):\n"
                     "    try:\n"
                     "        raise exc\n"
                     "    except Exception as e:\n"
                     "        return e\n", "<gen-nova-fixtures>", "exec"), ns)
        exc = ns["_build_resources"](exception.ComputeResourcesUnavailable(
            reason="Insufficient free space for vTPM images"))
        self.compute_create("reschedule", "b", THIS, "error", exc=exc,
                            fault="Insufficient compute resources: "
                                  "Insufficient free space for vTPM images.")
        self.compute_create("reschedule", "b", OTHER, "start")
        self.compute_create("reschedule", "b", OTHER, "end")
        # Everyday traffic on both compute hosts.
        self.noise("noise", "n", OTHER)
        self.noise("noise", "a", THIS)
        # Deletes: by the compute host; by the API of an instance that was
        # never scheduled (no host); by the API because the compute service
        # is down (the instance's host is in the payload).
        self.compute_delete("delete", "a", THIS)
        self.api_delete("delete_not_scheduled", "c", None,
                        relevant_legacy=[API], relevant_versioned=[],
                        legacy_host=API, versioned_host=None)
        self.api_delete("delete_compute_down", "d", THIS,
                        relevant_legacy=[THIS], relevant_versioned=[THIS],
                        legacy_host=THIS, versioned_host=THIS)
        self.compute_delete("delete", "b", OTHER)
        # The same build through oslo.messaging's v1 driver ("messaging"):
        # no oslo 2.0 envelope.
        self.conf.set_override("driver", ["messaging"],
                               group="oslo_messaging_notifications")
        from nova import rpc
        rpc.cleanup()
        rpc.init(self.conf)
        self.compute_create("boot_v1", "d", THIS, "start")


def main():
    args = parse_args()
    # Nova's code logs through oslo.log; keep the generator quiet.
    import logging
    logging.basicConfig(level=logging.ERROR)
    from oslo_utils import timeutils
    timeutils.set_time_override(datetime.datetime(2024, 5, 14, 9, 31, 7, 123456))

    url = args.broker if args.broker else "kombu+memory:////"
    if args.broker and not args.broker.startswith("amqp://"):
        sys.exit("gen-nova-fixtures: --broker takes an amqp:// URL")
    conf = configure(url.replace("amqp://", "rabbit://", 1))
    from nova import objects, rpc
    objects.register_all()
    rpc.init(conf)
    capture = BrokerCapture(args.broker) if args.broker else MemoryCapture()

    out = os.path.abspath(args.out)
    shutil.rmtree(os.path.join(out, "genuine"), ignore_errors=True)
    os.makedirs(os.path.join(out, "genuine"))
    gen = Generator(conf, capture, out)
    gen.run()
    index = {"generator": "tests/tools/gen-nova-fixtures.py",
             "transport": "rabbitmq" if args.broker else "kombu-memory",
             "this_host": THIS, "other_host": OTHER, "api_host": API,
             "hosts": HOSTS, "messages": gen.entries}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f, indent=1, sort_keys=True)
        f.write("\n")
    rpc.cleanup()
    print("gen-nova-fixtures: %d messages in %s" % (len(gen.entries), out))


if __name__ == "__main__":
    main()
