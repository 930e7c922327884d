/* domus-vm: the process that runs one guest domain (contract: vmproc.h; the
 * library it is made of: vm.h). */
#include "domus/util.h"
#include "domus/vm.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static struct vm vm; /* large: the domain and its device table */

static void signal_ready(int fd)
{
    if (fd < 0)
        return;
    if (write(fd, "ready\n", 6) != 6)
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
