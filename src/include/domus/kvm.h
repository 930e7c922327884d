/* KVM back end of the hypervisor core: one VM per domain, one thread per vCPU. */
#ifndef DOMUS_KVM_H
#define DOMUS_KVM_H

#include "domus/hv.h"
#include "domus/saveimg.h"

#include <linux/kvm.h>
#include <stddef.h>

/* Opens /dev/kvm, checks for KVM_CAP_XEN_HVM with hypercall interception,
 * creates the VM with an in-kernel irqchip, maps d->mem and creates
 * d->nr_vcpus vCPUs with Domus's CPUID.  Sets d->ops.  On failure returns
 * -errno with a reason in err and leaves nothing open. */
int kvm_domain_create(struct domain *d, char *err, size_t errlen);

/* Puts the boot vCPU at the PVH entry (32-bit protected mode, paging off,
 * %ebx = start_info). */
int kvm_boot_vcpu_setup(struct domain *d, uint64_t entry, uint64_t start_info);

/* Starts one thread per vCPU. */
int kvm_domain_start(struct domain *d);

/* Pauses or unpauses every vCPU.  A pause returns only when every vCPU
 * thread is out of KVM_RUN and parked (vcpugate.h; parked threads still run
 * the calls other threads queue for them) or has ended; the control thread
 * calls it, never a vCPU thread.  Without a VM (unit tests) it only records
 * d->paused. */
void kvm_domain_pause(struct domain *d, bool pause);

/* Ends a guest's suspend (hv_suspend): pauses the domain (so that the
 * suspending vCPU's hypercall has completed), puts value in that vCPU's
 * %rax as SCHEDOP_shutdown's result (1: cancelled or checkpointed, the
 * guest carries on in place; a restored domain's image already holds 0),
 * clears d->suspended and, when run, unpauses.  -EINVAL when the domain is
 * not suspended; a failing register write leaves it suspended and paused.
 * The control thread calls it. */
int kvm_domain_resume(struct domain *d, uint64_t value, bool run);

/* Dirty logging for live migration: kvm_dirty_log_start sets
 * KVM_MEM_LOG_DIRTY_PAGES on the fixed regions' memslots (RAM, special
 * pages) and starts gmem's own marking (gmem.h); kvm_dirty_log_get ORs
 * into bm (gmem_dirty_npages bits, by memfd page) every page written since
 * the last call or the start, by the vCPUs (KVM_GET_DIRTY_LOG, which also
 * clears the log and write-protects them again) and by Domus
 * (gmem_dirty_collect); kvm_dirty_log_stop turns both off.  0 or -errno. */
int kvm_dirty_log_start(struct domain *d);
int kvm_dirty_log_get(struct domain *d, uint64_t *bm);
void kvm_dirty_log_stop(struct domain *d);

/* Ends the vCPU threads (shutdown reason poweroff unless one is set) and
 * joins them; the VM and its vCPU fds stay, for the back ends' event
 * channels, until kvm_domain_destroy. */
void kvm_domain_stop(struct domain *d);

/* kvm_domain_stop, then frees the VM and the vCPUs. */
void kvm_domain_destroy(struct domain *d);

/* Microseconds of CPU time the vCPU threads used. */
uint64_t kvm_domain_cputime_ns(struct domain *d);

/* Save and restore, with the domain paused (the calls run on the vCPUs'
 * threads).  kvm_vcpu_save fills s with the vCPU's registers, sregs,
 * XSAVE, XCRs, LAPIC, events, mp_state, TSC offset and the MSRs of
 * KVM_GET_MSR_INDEX_LIST that KVM_GET_MSRS gives for it; kvm_vcpu_load sets
 * them (MSRs KVM refuses: -EINVAL, logged).  kvm_clock_save reads
 * KVM_GET_CLOCK and the TSC kHz; kvm_clock_load sets the TSC kHz of every
 * vCPU, then the clock, and goes before kvm_vcpu_load (KVM's order: TSC
 * kHz, KVM_SET_CLOCK, TSC offsets, then the Xen attributes).  0 or -errno. */
int kvm_vcpu_save(struct vcpu *v, struct simg_vcpu *s);
int kvm_vcpu_load(struct vcpu *v, const struct simg_vcpu *s);
int kvm_clock_save(struct domain *d, struct simg_clock *c);
int kvm_clock_load(struct domain *d, const struct simg_clock *c);

/* CPUID for vCPU vcpu_id of nr_vcpus, built from KVM's supported list:
 * Xen leaves at 0x40000000 (signature, version 4.17, hypercall MSR, TSC,
 * HVM features with the per-vCPU upcall vector and the vCPU id), KVM's own
 * leaves removed, APIC ids per vCPU, leaf 0xD consistent with the XCR0
 * features offered.  out must hold supported->nent + 8 entries. */
void cpuid_build(const struct kvm_cpuid2 *supported, struct kvm_cpuid2 *out,
                 unsigned vcpu_id, unsigned nr_vcpus, unsigned domid,
                 uint64_t xcr0_limit);

/* The XSAVE components (XCR0 bits) this host can give guests safely: all,
 * except under QEMU's TCG (the test host), whose SVM does not intercept
 * XSETBV, so KVM never learns the guest's XCR0 and CPUID leaf 0xD would
 * disagree with it; there XSAVE is hidden (0) and guests use FXSAVE. */
uint64_t cpuid_host_xcr0_limit(void);

#endif
