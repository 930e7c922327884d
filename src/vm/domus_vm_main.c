/* domus-vm: the process that runs one guest domain (contract: vmproc.h; the
 * library it is made of: vm.h). */
#include "domus/util.h"
#include "domus/vm.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static struct vm vm; /* large: the domain and its device table */

/* "ready", and a restore's instants for migration's downtime phases. */
static void signal_ready(int fd)
{
    char line[200];
    int n;

    if (fd < 0)
        return;
    n = snprintf(line, sizeof(line), "ready");
    if (vm.args.restore)
        n += snprintf(line + n, sizeof(line) - (size_t)n,
                      " vm_end=%llu vm_applied=%llu vm_devices=%llu vm_vcpus=%llu "
                      "vm_ready=%llu",
                      (unsigned long long)vm.t_end, (unsigned long long)vm.t_applied,
                      (unsigned long long)vm.t_devices, (unsigned long long)vm.t_vcpus,
                      (unsigned long long)drealtime_ns());
    line[n++] = '\n';
    if (write(fd, line, (size_t)n) != n)
        dwarn("ready fd: %s", strerror(errno));
    close(fd);
}

int main(int argc, char **argv)
{
    struct vm_args a;
    int status = DOMUS_VM_EXIT_ERROR;

    dlog_set_prog("domus-vm");
    if (vm_parse_args(argc, argv, &a) < 0) {
        vm_usage();
        return DOMUS_VM_EXIT_ERROR;
    }
    vm_setup(&vm, &a);
    if (vm_init(&vm) < 0) {
        derr("%s", vm.err[0] ? vm.err : "domain set-up failed");
        goto out;
    }
    signal_ready(a.ready_fd);
    status = vm_run(&vm);
    if (status == DOMUS_VM_EXIT_DESTROYED)
        dinfo("dom%u: destroyed", vm.dom.domid);
out:
    vm_exit(&vm);
    return status;
}
