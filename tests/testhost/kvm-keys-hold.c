/* kvm-keys-hold: keep kvm.ko's run-time static branches switched on for the
 * test host's lifetime, so that no domain start or stop patches kvm.ko's code.
 *
 * KVM flips three static keys as VMs come and go: kvm_xen_enabled (a VM that
 * sets a Xen hypercall MSR), apic_sw_disabled (a LAPIC whose software enable
 * bit is clear, as every LAPIC is at reset) and apic_hw_disabled (a LAPIC
 * whose APIC_BASE enable bit is clear).  Each 0 <-> 1 transition rewrites
 * kvm.ko's text on a live SMP kernel (text_poke_bp: int3 first, then the new
 * bytes), and under QEMU's multi-threaded TCG a test-host CPU has executed
 * such an int3 after the patch was complete: an oops in kvm.ko
 * (apic_has_pending_timer, kvm_arch_vcpu_ioctl_run), or a test host gone
 * silently.  This process holds one VM whose Xen MSR is set and one vCPU whose
 * LAPIC is hardware- and software-disabled, so every count stays >= 1 and the
 * branches are patched once, at the test host's start.
 *
 * Prints one line, "keyhold: ..." and then sleeps until killed; exits 1 when
 * a step fails.  Nothing in Domus depends on it: it only keeps the emulator
 * away from cross-modifying code. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define MSR_IA32_APICBASE 0x1b
#define APICBASE_DEFAULT 0xfee00000ULL /* the enable bit (bit 11) clear */
#define XEN_HYPERCALL_MSR 0x40000000

static int fail(const char *what)
{
    printf("keyhold: FAIL %s: %s\n", what, strerror(errno));
    fflush(stdout);
    return 1;
}

static int apic_hw_disable(int vcpu)
{
    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry e;
    } m;
    memset(&m, 0, sizeof(m));
    m.hdr.nmsrs = 1;
    m.e.index = MSR_IA32_APICBASE;
    m.e.data = APICBASE_DEFAULT;
    return ioctl(vcpu, KVM_SET_MSRS, &m) == 1 ? 0 : -1;
}

int main(void)
{
    struct kvm_xen_hvm_config cfg;
    int kvm, vm, vcpu;

    kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        return fail("open /dev/kvm");
    vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0)
        return fail("KVM_CREATE_VM");
    if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0)
        return fail("KVM_CREATE_IRQCHIP");
    memset(&cfg, 0, sizeof(cfg));
    cfg.flags = KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL;
    cfg.msr = XEN_HYPERCALL_MSR;
    if (ioctl(vm, KVM_XEN_HVM_CONFIG, &cfg) < 0)
        return fail("KVM_XEN_HVM_CONFIG");
    vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0)
        return fail("KVM_CREATE_VCPU");
    if (apic_hw_disable(vcpu) < 0)
        return fail("KVM_SET_MSRS(APIC_BASE)");
    printf("keyhold: kvm_xen_enabled, apic_sw_disabled and apic_hw_disabled held\n");
    fflush(stdout);
    for (;;)
        pause();
}
