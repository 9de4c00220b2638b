/* Blocking librabbitmq-c connections for the benchmark programs (not for
 * vtpmd, whose bus never blocks): connect, log in, open channel 1, and
 * exit with a message naming the program on any failure. */
#ifndef VTPMD_BENCH_AMQP_PLAIN_H
#define VTPMD_BENCH_AMQP_PLAIN_H
#include <amqp.h>

/* The program name the messages start with. */
extern const char *amqp_plain_prog;

/* Exits 1 with "PROG: WHAT: ..." unless r is a normal reply. */
void amqp_plain_check_reply(const char *what, amqp_rpc_reply_t r);
/* The same for the last RPC on c. */
void amqp_plain_check(const char *what, amqp_connection_state_t c);
/* amqp://user:pass@host:port/vhost ("/" when the path is empty): a
 * logged-in connection with channel 1 open. A bad URL exits 2, anything
 * else that fails exits 1. */
amqp_connection_state_t amqp_plain_connect(const char *url);
/* Closes channel 1 and the connection, and frees it. */
void amqp_plain_close(amqp_connection_state_t c);
#endif
