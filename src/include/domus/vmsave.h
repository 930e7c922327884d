/* A whole domain to and from a save image (saveimg.h, docs/save-image.md).
 *
 * The architectural state comes from and goes to KVM through struct
 * vm_state_ops (vm_kvm_state_ops in domus-vm; fakes in the unit tests); the
 * memory and the hypervisor modules are read from struct domain directly. */
#ifndef DOMUS_VMSAVE_H
#define DOMUS_VMSAVE_H

#include "domus/hv.h"
#include "domus/saveimg.h"

#include <stddef.h>

struct vm_state_ops {
    int (*vcpu_save)(struct vcpu *v, struct simg_vcpu *s);
    int (*vcpu_load)(struct vcpu *v, const struct simg_vcpu *s);
    int (*clock_save)(struct domain *d, struct simg_clock *c);
    int (*clock_load)(struct domain *d, const struct simg_clock *c);
    /* Dirty logging (kvm.h's kvm_dirty_log_*); NULL: no live migration. */
    int (*dirty_start)(struct domain *d);
    int (*dirty_get)(struct domain *d, uint64_t *bm);
    void (*dirty_stop)(struct domain *d);
};

/* kvm.c's kvm_vcpu_save, ... */
extern const struct vm_state_ops vm_kvm_state_ops;

/* Writes d, which the caller has paused (kvm_domain_pause), to w: header
 * with config, memory, clock, every vCPU, the modules (hv_modules[]),
 * end.  0 or -errno with err set; on failure the caller removes what was
 * written and unpauses d. */
int vm_save_image(struct domain *d, struct simg_writer *w, const char *config,
                  const struct vm_state_ops *ops, char *err, size_t errlen);

/* The part of vm_save_image after the memory: clock, vCPUs, modules, end
 * (live migration sends the header and the memory itself). */
int vm_save_state(struct domain *d, struct simg_writer *w, const struct vm_state_ops *ops,
                  char *err, size_t errlen);

/* Restoring is two steps around the domain's creation: vm_restore_header
 * reads the header (*config, malloc'd: the domain to create from it);
 * vm_restore_body reads the rest into d (created with its memory and
 * vCPUs, not started).  The memory goes straight into d's fresh memfd; the
 * vCPUs, clock and modules are held until the end record's checksum is
 * verified and every vCPU is complete, then applied: clock, vCPUs, modules
 * in hv_modules[] order.  0 or -errno with r->err set; on failure d is to
 * be destroyed. */
int vm_restore_header(struct simg_reader *r, char **config);
int vm_restore_body(struct domain *d, struct simg_reader *r,
                    const struct vm_state_ops *ops);

/* vm_restore_body applying only the modules whose bit (1 << index in
 * hv_modules[]) is set in modules; every record is still read and checked
 * for presence. */
#define VM_RESTORE_ALL_MODULES 0xffffffffu
int vm_restore_body_modules(struct domain *d, struct simg_reader *r,
                            const struct vm_state_ops *ops, uint32_t modules);

/* A lazy restore (vmlazy.h): r in index mode (simg_reader.index_only);
 * page data goes into lz's index instead of memory, and once every other
 * record is read and checked (the structure, not the checksum: the pages
 * are not read yet) serve(ctx) is called to start serving guest memory
 * before the state is applied (KVM may touch guest memory then). */
struct vm_lazy;
struct vm_lazy_start {
    struct vm_lazy *lz;
    int (*serve)(void *ctx, char *err, size_t errlen);
    void *ctx;
    bool postcopy; /* vm_restore_body_postcopy */
};
int vm_restore_body_lazy(struct domain *d, struct simg_reader *r,
                         const struct vm_state_ops *ops, uint32_t modules,
                         const struct vm_lazy_start *ls);

/* A post-copy migration's stream (vmlazy.h): r reads page data into the
 * domain's memory as an eager restore does (r->pages_to), the post-copy
 * record goes to ls->lz, and ls->serve starts serving faults once the
 * records are checked, before the state is applied. */
int vm_restore_body_postcopy(struct domain *d, struct simg_reader *r,
                             const struct vm_state_ops *ops, uint32_t modules,
                             const struct vm_lazy_start *ls);

/* The modules a guest resumed from its own suspend (SCHEDOP_shutdown
 * returning 0) does not rebuild itself: the HVM params (Xen's stream
 * carries them too).  Event channels, grant frames, shared_info, vcpu_info
 * and timers it sets up again (docs/architecture.md), and fresh back ends
 * allocate the console and xenstore ports. */
uint32_t vm_restore_resumed_modules(void);

#endif
