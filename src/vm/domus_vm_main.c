/* domus-vm: the process that runs one guest domain (contract: vmproc.h; the
 * library it is made of: vm.h). */
#include "domus/util.h"
#include "domus/vm.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static struct vm vm; /* large: the domain and its device table */

/* "ready", then the instants reached (vm.h), as "key=ns" words. */
static void signal_ready(int fd)
{
    const struct {
        const char *key;
        uint64_t t;
    } ts[] = {{"vm_main", vm.t_main},       {"vm_mem", vm.t_mem},
              {"vm_built", vm.t_built},     {"vm_kvm", vm.t_kvm},
              {"vm_end", vm.t_end},         {"vm_applied", vm.t_applied},
              {"vm_devices", vm.t_devices}, {"vm_vcpus", vm.t_vcpus},
              {"vm_ready", drealtime_ns()}};
    char line[400];
    int n;

    if (fd < 0)
        return;
    n = snprintf(line, sizeof(line), "ready");
    for (size_t i = 0; i < ARRAY_SIZE(ts); i++)
        if (ts[i].t)
            n += snprintf(line + n, sizeof(line) - (size_t)n, " %s=%llu", ts[i].key,
                          (unsigned long long)ts[i].t);
    line[n++] = '\n';
    if (write(fd, line, (size_t)n) != n)
        dwarn("ready fd: %s", strerror(errno));
    close(fd);
}

int main(int argc, char **argv)
{
    struct vm_args a;
    int status = DOMUS_VM_EXIT_ERROR;
    uint64_t t_main = drealtime_ns();

    dlog_set_prog("domus-vm");
    if (vm_parse_args(argc, argv, &a) < 0) {
        vm_usage();
        return DOMUS_VM_EXIT_ERROR;
    }
    vm_setup(&vm, &a);
    vm.t_main = t_main;
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
