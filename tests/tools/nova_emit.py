#!/usr/bin/python3
"""Emit genuine Nova compute notifications through Nova's own code.

Nova's compute manager calls nova.compute.utils to notify; this script
calls the same functions (Debian's python3-nova) for an instance built
with nova.tests.unit.fake_instance, publishing through oslo.messaging to
RabbitMQ exactly as nova-compute does (driver messagingv2, format both:
a legacy and a versioned copy of every event).

Usage:
  nova_emit.py --url amqp://127.0.0.1:5672/ --host compute-1 \
      [--format both|legacy|versioned] EVENT:UUID[:key=val,...] ...
  nova_emit.py --url ... --host ... -        (read the same words from stdin,
                                              one or more per line)
EVENT is create.start, create.end, create.error, delete.start, delete.end,
or delete (delete.start then delete.end).
Per-event keys: flavor=NAME, spec.K=V (flavor extra spec),
image.K=V (image property), meta.K=V (instance metadata), project=ID,
name=DISPLAY_NAME, host=HOST (overrides --host for this event),
publisher=api (delete of a never-scheduled instance, from nova-api).
Prints one line per event sent; exits non-zero on any failure.
"""
import argparse
import os
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")

from oslo_url import oslo_url  # noqa: E402 (after the filter)


def configure(url, fmt, host):
    url = oslo_url(url)
    conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
    conf.write(
        "[DEFAULT]\n"
        "transport_url = %s\n"
        "host = %s\n"
        "[oslo_messaging_notifications]\n"
        "driver = messagingv2\n"
        "[notifications]\n"
        "notification_format = %s\n"
        "[glance]\n"
        "api_servers = http://127.0.0.1:9292\n" % (url, host, fmt))
    conf.close()
    import nova.config
    nova.config.parse_args(["nova_emit", "--config-file", conf.name],
                           configure_db=False, init_rpc=True)
    os.unlink(conf.name)


def build_instance(ctx, uuid, opts, host):
    from nova import objects
    from nova.tests.unit import fake_instance
    specs = {k[5:]: v for k, v in opts.items() if k.startswith("spec.")}
    image = {k[6:]: v for k, v in opts.items() if k.startswith("image.")}
    meta = {k[5:]: v for k, v in opts.items() if k.startswith("meta.")}
    flavor = objects.Flavor(id=1, name=opts.get("flavor", "m1.small"),
                            memory_mb=512, vcpus=1, root_gb=1, ephemeral_gb=0,
                            flavorid="1", swap=0, rxtx_factor=1.0,
                            vcpu_weight=1, disabled=False, is_public=True,
                            extra_specs=specs, projects=[])
    sys_meta = {"image_%s" % k: v for k, v in image.items()}
    inst = fake_instance.fake_instance_obj(
        ctx, uuid=uuid, host=host, node=host,
        project_id=opts.get("project", "6f70656e737461636b20342065766572"),
        user_id="fake-user", display_name=opts.get("name", "vm-" + uuid[:8]),
        hostname=opts.get("name", "vm-" + uuid[:8]),
        flavor=flavor,
        image_ref="155d900f-4e14-4e4c-a73d-069cbf4541e6",
        vm_state="building", task_state="spawning")
    # Set, not passed: attributes left unset would be lazy-loaded from a DB.
    inst.metadata = meta
    inst.system_metadata = sys_meta
    from nova.network import model as network_model
    inst.info_cache = objects.InstanceInfoCache(
        instance_uuid=uuid, network_info=network_model.NetworkInfo([]))
    inst.trusted_certs = None
    return inst


def no_bdms():
    from nova import objects
    return objects.BlockDeviceMappingList(objects=[])


def emit(ctx, event, uuid, opts, default_host):
    from nova import exception, rpc
    from nova.compute import utils as cu
    from nova.objects import fields
    host = opts.get("host", default_host)
    from_api = opts.get("publisher") == "api"
    inst = build_instance(ctx, uuid, opts, None if from_api else host)
    notifier = rpc.get_notifier("api" if from_api else "compute",
                                host)
    source = fields.NotificationSource.API if from_api \
        else fields.NotificationSource.COMPUTE
    phase = {"start": fields.NotificationPhase.START,
             "end": fields.NotificationPhase.END,
             "error": fields.NotificationPhase.ERROR}
    if event.startswith("create."):
        ph = event.split(".")[1]
        exc = None
        if ph == "error":
            try:  # Nova reports a raised exception, with its traceback
                raise exception.RescheduledException(instance_uuid=uuid,
                                                     reason="no valid host")
            except exception.RescheduledException as e:
                exc = e
            cu.notify_about_instance_usage(notifier, ctx, inst, event,
                                           fault=exc)
        else:
            cu.notify_about_instance_usage(notifier, ctx, inst, event,
                                           extra_usage_info={"image_name": "cirros"})
        cu.notify_about_instance_create(ctx, inst, host, phase=phase[ph],
                                        exception=exc, bdms=no_bdms())
    elif event in ("delete.start", "delete.end", "delete"):
        # What compute_utils.notify_about_instance_delete() sends around a
        # delete, with the bdms given instead of read from a database.
        for ph in (["start", "end"] if event == "delete" else [event[7:]]):
            cu.notify_about_instance_usage(notifier, ctx, inst, "delete." + ph)
            cu.notify_about_instance_action(
                ctx, inst, host, source=source,
                action=fields.NotificationAction.DELETE, phase=phase[ph],
                bdms=no_bdms())
    else:
        raise SystemExit("unknown event %r" % event)


def parse_word(word):
    parts = word.split(":", 2)
    if len(parts) < 2:
        raise SystemExit("bad event %r (want EVENT:UUID[:k=v,...])" % word)
    opts = {}
    if len(parts) == 3 and parts[2]:
        for kv in parts[2].split(","):
            k, _, v = kv.partition("=")
            opts[k] = v
    return parts[0], parts[1], opts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--host", default="compute-1")
    ap.add_argument("--format", default="both",
                    choices=["both", "legacy", "versioned", "unversioned"])
    ap.add_argument("events", nargs="+")
    a = ap.parse_args()
    fmt = "unversioned" if a.format == "legacy" else a.format
    configure(a.url, fmt, a.host)
    from nova import context, rpc
    ctx = context.RequestContext("fake-user", "fake-project")
    words = a.events
    if words == ["-"]:
        words = (w for line in sys.stdin for w in line.split())
    n = 0
    for w in words:
        ev, uuid, opts = parse_word(w)
        emit(ctx, ev, uuid, opts, a.host)
        n += 1
        print("sent %s %s" % (ev, uuid), flush=True)
    # messagingv2 publishes synchronously; close the transport cleanly.
    rpc.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
