/* The policy: which instances get a vTPM, and with which settings.
 *
 * Compiled from a struct config (policy.default, policy.rules, and the
 * global vTPM settings the rules override) into an immutable object that
 * keeps its own copies, so a reload builds a new one and swaps it as a
 * whole while the old one serves decisions in flight.
 *
 * Rules are tried in order; the first whose every given match key holds
 * selects the instance. A key holds when any of its glob patterns
 * (fnmatch(3)) matches the event's value; for maps, every listed map key
 * must be present in the event and match. A key the event does not carry
 * (flavor extra specs in a legacy event, image properties in a versioned
 * one, a missing project id) does not match. When no rule matches,
 * policy.default decides. */
#ifndef VTPMD_POLICY_H
#define VTPMD_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "vconfig.h"
#include "novamsg.h"

struct policy;

struct policy_decision {
    bool selected;
    const char *rule;        /* the matching rule; NULL: policy.default decided */
    uint64_t image_size;     /* bytes */
    uint64_t memory;         /* bytes */
    const char *kernel;
    const char *domain_name; /* template: {uuid}, {instance_name} */
};

/* 0, or -EINVAL when cfg is NULL. */
int policy_new(const struct config *cfg, struct policy **out);
void policy_free(struct policy *p);

/* Decides for ev. The pointers in *out stay valid while p lives. Logs at
 * debug level why each rule before the deciding one did not match. */
void policy_decide(const struct policy *p, const struct nova_event *ev,
                   struct policy_decision *out);

/* Number of rules (for logs and the control API). */
size_t policy_rule_count(const struct policy *p);

#endif
