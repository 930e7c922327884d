/* kvm-xen-probe: does this host's KVM have the Xen acceleration Domus uses?
 *
 * Opens /dev/kvm, creates a VM, checks that KVM_CHECK_EXTENSION(KVM_CAP_XEN_HVM)
 * reports KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL and KVM_XEN_HVM_CONFIG_EVTCHN_SEND,
 * and that KVM_XEN_HVM_CONFIG with INTERCEPT_HCALL is accepted.  Prints one
 * "PASS what" or "FAIL what" line per check; exits 1 if any failed. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int failures;

static void result(int ok, const char *what, const char *detail)
{
    printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", what, detail[0] ? ": " : "", detail);
    if (!ok)
        failures++;
}

int main(void)
{
    char detail[160] = "";
    int kvm = -1, vm = -1;

    kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        snprintf(detail, sizeof(detail), "open /dev/kvm: %s", strerror(errno));
        result(0, "kvm-xen: /dev/kvm", detail);
        return 1;
    }
    int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
    snprintf(detail, sizeof(detail), "API version %d", api);
    result(api == KVM_API_VERSION, "kvm-xen: KVM API version", detail);

    vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) {
        snprintf(detail, sizeof(detail), "%s", strerror(errno));
        result(0, "kvm-xen: KVM_CREATE_VM", detail);
        goto out;
    }
    result(1, "kvm-xen: KVM_CREATE_VM", "");

    int caps = ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_XEN_HVM);
    snprintf(detail, sizeof(detail), "0x%x", caps < 0 ? 0 : caps);
    result(caps > 0, "kvm-xen: KVM_CAP_XEN_HVM",
           caps > 0
               ? detail
               : "absent: kvm built without CONFIG_KVM_XEN (real hosts: make setup-kvm)");
    if (caps <= 0)
        goto out;
    result((caps & KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL) != 0,
           "kvm-xen: KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL", "");
    result((caps & KVM_XEN_HVM_CONFIG_EVTCHN_SEND) != 0,
           "kvm-xen: KVM_XEN_HVM_CONFIG_EVTCHN_SEND", "");

    struct kvm_xen_hvm_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.flags = KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL;
    if (ioctl(vm, KVM_XEN_HVM_CONFIG, &cfg) < 0) {
        snprintf(detail, sizeof(detail), "%s", strerror(errno));
        result(0, "kvm-xen: KVM_XEN_HVM_CONFIG(INTERCEPT_HCALL)", detail);
    } else {
        result(1, "kvm-xen: KVM_XEN_HVM_CONFIG(INTERCEPT_HCALL)", "");
    }
out:
    if (vm >= 0)
        close(vm);
    close(kvm);
    return failures ? 1 : 0;
}
