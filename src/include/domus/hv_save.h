/* Save and load of the hypervisor modules' state of one domain: one record
 * of the save image each (saveimg.h, docs/save-image.md).
 *
 * save appends the module's record body to rb (taking d->lock where the
 * state lives under it); 0 or -ENOMEM.  load checks the whole body first
 * and changes d only when it is valid, then replays the state through
 * d->ops (KVM is the executor, struct domain the record); 0, or -EINVAL
 * (bad body, message in err) or the ops' -errno.  load expects a domain
 * fresh from domain_init with its memory set up: -EBUSY otherwise where
 * that matters (ports already bound). */
#ifndef DOMUS_HV_SAVE_H
#define DOMUS_HV_SAVE_H

#include "domus/hv.h"
#include "domus/recbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hv_module {
    uint32_t rec_type; /* SIMG_REC_HVM_PARAMS, SIMG_REC_HV_* */
    const char *name;
    int (*save)(struct domain *d, struct recbuf *rb);
    int (*load)(struct domain *d, const void *body, size_t len, char *err, size_t errlen);
    /* A restore after the guest's own suspend, which does not load the
     * module: what it takes from the record all the same (NULL: nothing). */
    int (*resume)(struct domain *d, const void *body, size_t len, char *err,
                  size_t errlen);
    /* Written with SIMG_REC_OPTIONAL; an image without it (an older
     * Domus's) restores without loading the module. */
    bool optional;
};

/* In the order a restore loads them: params, grant table, event channels,
 * guest areas, timers (a timer names its port). */
extern const struct hv_module hv_modules[];
extern const size_t hv_nr_modules;

/* vm_assist: u64, the VMASST_TYPE_* bits the guest turned on (only
 * runstate_update_flag's may be set).  Loaded after the guest's own suspend
 * too: Linux turns it on once, at boot. */
int hv_save_vmassist(struct domain *d, struct recbuf *rb);
int hv_load_vmassist(struct domain *d, const void *body, size_t len, char *err,
                     size_t errlen);

/* HVM params: the non-zero ones, u32 n, u32 0, n x (u32 index, u32 0, u64). */
int hv_save_params(struct domain *d, struct recbuf *rb);
int hv_load_params(struct domain *d, const void *body, size_t len, char *err,
                   size_t errlen);

/* Event channels: u32 n, u32 0, n x (u32 port, state, vcpu, remote_dom,
 * remote_port, virq) for the ports that are not free, port 0 left out.
 * Ports bound to a Domain 0 back end come back unbound for Domain 0: the
 * restored domain's fresh back ends bind them (evtchn_bind_backend). */
int hv_save_evtchn(struct domain *d, struct recbuf *rb);
int hv_load_evtchn(struct domain *d, const void *body, size_t len, char *err,
                   size_t errlen);

/* The event channel record checked as hv_load_evtchn does, its VIRQ and
 * IPI ports kept as re-binding hints (evtchn_resume_set). */
int hv_resume_evtchn(struct domain *d, const void *body, size_t len, char *err,
                     size_t errlen);
/* Grant table: u32 version, u32 n frames, u64 gpa[n] (0: not placed), then
 * the n frames' contents (the frames are extra pages, not RAM). */
int hv_save_gnttab(struct domain *d, struct recbuf *rb);
int hv_load_gnttab(struct domain *d, const void *body, size_t len, char *err,
                   size_t errlen);

/* Guest-registered areas: u64 shared_info gpa, u32 nr_vcpus, u32 0, then
 * per vCPU u64 vcpu_info, u64 time area, u64 runstate area, u32 upcall
 * vector, u32 0 (0: not registered). */
int hv_save_areas(struct domain *d, struct recbuf *rb);
int hv_load_areas(struct domain *d, const void *body, size_t len, char *err,
                  size_t errlen);

/* Timers: u32 nr_vcpus, u32 0, per vCPU u32 timer port, u32 0, u64
 * periodic ns, u64 single-shot expiry ns (guest clock). */
int hv_save_timers(struct domain *d, struct recbuf *rb);
int hv_load_timers(struct domain *d, const void *body, size_t len, char *err,
                   size_t errlen);

#endif
