#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include "amqp_plain.h"
#include "xalloc.h"

const char *amqp_plain_prog = "bench";

void amqp_plain_check_reply(const char *what, amqp_rpc_reply_t r)
{
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
        fprintf(stderr, "%s: %s: %s\n", amqp_plain_prog, what,
                amqp_error_string2(r.library_error));
    else if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION)
        fprintf(stderr, "%s: %s: broker error (method %s)\n", amqp_plain_prog, what,
                amqp_method_name(r.reply.id));
    else
        fprintf(stderr, "%s: %s failed\n", amqp_plain_prog, what);
    exit(1);
}

void amqp_plain_check(const char *what, amqp_connection_state_t c)
{
    amqp_plain_check_reply(what, amqp_get_rpc_reply(c));
}

amqp_connection_state_t amqp_plain_connect(const char *url)
{
    struct amqp_connection_info ci;
    char *u autofree = xstrdup(url);
    char slash[] = "/";
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);

    amqp_default_connection_info(&ci);
    if (s == NULL || amqp_parse_url(u, &ci) != AMQP_STATUS_OK) {
        fprintf(stderr, "%s: bad url %s\n", amqp_plain_prog, url);
        exit(2);
    }
    if (ci.vhost[0] == '\0') /* "amqp://h:p/" names the default vhost */
        ci.vhost = slash;
    if (amqp_socket_open(s, ci.host, ci.port) != AMQP_STATUS_OK) {
        fprintf(stderr, "%s: cannot connect to %s\n", amqp_plain_prog, url);
        exit(1);
    }
    amqp_plain_check_reply("login", amqp_login(c, ci.vhost, 0, 131072, 0,
                                               AMQP_SASL_METHOD_PLAIN, ci.user, ci.password));
    amqp_channel_open(c, 1);
    amqp_plain_check("channel.open", c);
    return c;
}

void amqp_plain_close(amqp_connection_state_t c)
{
    amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}
