/* domus-vm's command line (vmproc.h) into struct vm_args. */
#include "domus/util.h"
#include "domus/vm.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vm_usage(void)
{
    fprintf(stderr,
            "usage: domus-vm --domid N --name NAME --kernel PATH [--ramdisk PATH]\n"
            "       [--cmdline STR] --memory MIB [--maxmem MIB] --vcpus N\n"
            "       --console-log PATH --console-sock PATH --control-sock PATH\n"
            "       [--ready-fd FD] [--xenstore] [--xenstore-path SOCK]\n"
            "       [--disk DEVID:r|w:PATH]... [--vif DEVID,MAC,BRIDGE[,MTU]]...\n"
            "       [--restore IMAGE [--paused] [--lazy|--postcopy]]   (instead of "
            "--kernel)\n");
}

int vm_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || *s == '+' || *s == ' ' || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

/* --disk / --vif: one more device of kind k from spec. */
static int add_dev(struct vm_args *a, const struct vm_dev_kind *k, char *spec)
{
    struct vm_dev_spec *s = &a->devs[a->n_devs];
    unsigned n = 0;

    for (unsigned i = 0; i < a->n_devs; i++)
        n += a->devs[i].kind == k;
    if (n >= k->max || a->n_devs >= ARRAY_SIZE(a->devs))
        return -EINVAL;
    if (k->parse(spec, &s->cfg, &s->devid))
        return -EINVAL;
    s->kind = k;
    a->n_devs++;
    return 0;
}

static int set_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (vm_parse_uint(s, max, out) || *out < min)
        return -EINVAL;
    return 0;
}

/* One option c with its argument s. */
static int one_opt(struct vm_args *a, int c, char *s)
{
    uint64_t v;
    int rc = 0;

    switch (c) {
    case 'd':
        rc = set_uint(s, 0, 0x7fef, &v);
        a->domid = (unsigned)v;
        return rc;
    case 'n':
        a->name = s;
        return 0;
    case 'k':
        a->kernel = s;
        return 0;
    case 'r':
        a->ramdisk = s;
        return 0;
    case 'c':
        a->cmdline = s;
        return 0;
    case 'm':
        return set_uint(s, 0, 1ULL << 24, &a->memory_mb);
    case 'M':
        return set_uint(s, 0, 1ULL << 24, &a->maxmem_mb);
    case 'v':
        rc = set_uint(s, 1, HV_MAX_VCPUS, &v);
        a->vcpus = (unsigned)v;
        return rc;
    case 'l':
        a->console_log = s;
        return 0;
    case 's':
        a->console_sock = s;
        return 0;
    case 'C':
        a->control_sock = s;
        return 0;
    case 'R':
        rc = set_uint(s, 0, 1 << 20, &v);
        a->ready_fd = (int)v;
        return rc;
    case 'X':
        a->xenstore = true;
        return 0;
    case 'P':
        a->xs_path = s;
        return 0;
    case 'D':
        return add_dev(a, &vm_kind_vbd, s);
    case 'N':
        return add_dev(a, &vm_kind_vif, s);
    case 'I':
        a->restore = s;
        return 0;
    case 'p':
        a->paused = true;
        return 0;
    case 'z':
        a->lazy = true;
        return 0;
    case 'Z':
        a->postcopy = true;
        return 0;
    default:
        return -EINVAL;
    }
}

int vm_parse_args(int argc, char **argv, struct vm_args *a)
{
    static const struct option opts[] = {{"domid", 1, 0, 'd'},
                                         {"name", 1, 0, 'n'},
                                         {"kernel", 1, 0, 'k'},
                                         {"ramdisk", 1, 0, 'r'},
                                         {"cmdline", 1, 0, 'c'},
                                         {"memory", 1, 0, 'm'},
                                         {"maxmem", 1, 0, 'M'},
                                         {"vcpus", 1, 0, 'v'},
                                         {"console-log", 1, 0, 'l'},
                                         {"console-sock", 1, 0, 's'},
                                         {"control-sock", 1, 0, 'C'},
                                         {"ready-fd", 1, 0, 'R'},
                                         {"xenstore", 0, 0, 'X'},
                                         {"xenstore-path", 1, 0, 'P'},
                                         {"disk", 1, 0, 'D'},
                                         {"vif", 1, 0, 'N'},
                                         {"restore", 1, 0, 'I'},
                                         {"paused", 0, 0, 'p'},
                                         {"lazy", 0, 0, 'z'},
                                         {"postcopy", 0, 0, 'Z'},
                                         {0, 0, 0, 0}};
    int c;

    memset(a, 0, sizeof(*a));
    a->ready_fd = -1;
    optind = 1; /* callable more than once (unit tests) */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (one_opt(a, c, optarg) < 0)
            return -EINVAL;
    }
    if (optind != argc || !a->name || !a->kernel == !a->restore || !a->memory_mb ||
        !a->vcpus || (a->paused && !a->restore) || (a->lazy && !a->restore) ||
        (a->postcopy && (!a->restore || a->lazy)) ||
        (a->n_devs && (!a->xenstore || !a->xs_path)))
        return -EINVAL;
    return 0;
}
