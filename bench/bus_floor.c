/* The floor under bench_provision: what the broker and the two clients
 * cost with no provisioning at all. Stands in for vtpmd: consumes the
 * create.start notifications from a durable queue bound like vtpmd's,
 * reads the instance UUID (jansson, outer envelope then inner message,
 * as vtpmd's full decoder does), and at once publishes a minimal
 * vtpm.create.end for it (persistent, oslo envelope) to exchange vtpmd,
 * acking the delivery. Run by bench/bench_provision.sh --floor.
 *
 * Usage: bus_floor --url amqp://127.0.0.1:PORT/ */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <amqp.h>
#include <jansson.h>

#include "amqp_plain.h"
#include "xalloc.h"

/* The instance UUID of a versioned create.start, or NULL. */
static char *instance_uuid(const void *body, size_t len)
{
    json_t *outer = json_loadb(body, len, 0, NULL), *inner = NULL;
    const char *msg = json_string_value(json_object_get(outer, "oslo.message"));
    const char *u;
    char *out = NULL;

    if (msg)
        inner = json_loads(msg, 0, NULL);
    u = json_string_value(json_object_get(
        json_object_get(json_object_get(inner, "payload"), "nova_object.data"), "uuid"));
    if (u)
        out = xstrdup(u);
    json_decref(inner);
    json_decref(outer);
    return out;
}

int main(int argc, char **argv)
{
    amqp_connection_state_t c;
    amqp_basic_properties_t p;

    amqp_plain_prog = "bus_floor";
    if (argc != 3 || strcmp(argv[1], "--url") != 0) {
        fprintf(stderr, "usage: bus_floor --url URL\n");
        return 2;
    }
    c = amqp_plain_connect(argv[2]);
    /* Nova's exchange as oslo.messaging declares it; a queue like vtpmd's. */
    amqp_exchange_declare(c, 1, amqp_cstring_bytes("nova"), amqp_cstring_bytes("topic"), 0, 0,
                          0, 0, amqp_empty_table);
    amqp_exchange_declare(c, 1, amqp_cstring_bytes("vtpmd"), amqp_cstring_bytes("topic"), 0, 0,
                          0, 0, amqp_empty_table);
    amqp_queue_declare(c, 1, amqp_cstring_bytes("bus_floor"), 0, 1, 0, 0, amqp_empty_table);
    amqp_plain_check("declare", c);
    amqp_queue_bind(c, 1, amqp_cstring_bytes("bus_floor"), amqp_cstring_bytes("nova"),
                    amqp_cstring_bytes("versioned_notifications.info"), amqp_empty_table);
    amqp_basic_qos(c, 1, 0, 256, 0);
    amqp_basic_consume(c, 1, amqp_cstring_bytes("bus_floor"), amqp_empty_bytes, 0, 0, 1,
                       amqp_empty_table);
    amqp_plain_check("consume", c);
    memset(&p, 0, sizeof(p));
    p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    p.content_type = amqp_cstring_bytes("application/json");
    p.delivery_mode = 2;
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        amqp_envelope_t env;
        amqp_rpc_reply_t r;
        char *u, *inner, *out;
        json_t *msg;

        amqp_maybe_release_buffers(c);
        r = amqp_consume_message(c, &env, NULL, 0);
        if (r.reply_type != AMQP_RESPONSE_NORMAL)
            return 1;
        u = instance_uuid(env.message.body.bytes, env.message.body.len);
        if (u) {
            msg = json_pack("{s:s, s:{s:s}}", "event_type", "vtpm.create.end", "payload",
                            "instance_uuid", u);
            inner = json_dumps(msg, JSON_COMPACT);
            json_decref(msg);
            msg = json_pack("{s:s, s:s}", "oslo.version", "2.0", "oslo.message", inner);
            out = json_dumps(msg, JSON_COMPACT);
            json_decref(msg);
            amqp_basic_publish(c, 1, amqp_cstring_bytes("vtpmd"),
                               amqp_cstring_bytes("notifications.info"), 0, 0, &p,
                               amqp_cstring_bytes(out));
            free(out);
            free(inner);
            free(u);
        }
        amqp_basic_ack(c, 1, env.delivery_tag, 0);
        amqp_destroy_envelope(&env);
    }
}
