/* xl info's keys that apply to Domus (see toolstack.h), from this host.
 *
 * Where Xen asks its hypervisor, Domus has two answers: the host (CPUs,
 * memory, its kernel's command line: KVM is the hypervisor) and what
 * domus-vm tells its guests through XENVER_* (src/hv/hypercall.c: version,
 * extraversion, capabilities, changeset, platform parameters). */
#include "domus/hv.h"
#include "domus/toolstack.h"

#include <cpuid.h>
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

/* What XENVER_extraversion, _capabilities and _changeset return to guests. */
#define XLINFO_XEN_EXTRA ".0-domus"
#define XLINFO_XEN_CAPS "hvm-3.0-x86_64"
#define XLINFO_XEN_CHANGESET "domus"
#define XLINFO_VIRT_START "0xffff800000000000"

static void pair(json_object *arr, const char *key, const char *value)
{
    json_object *p = json_object_new_array();

    json_object_array_add(p, json_object_new_string(key));
    json_object_array_add(p, json_object_new_string(value));
    json_object_array_add(arr, p);
}

static void pairf(json_object *arr, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void pairf(json_object *arr, const char *key, const char *fmt, ...)
{
    char v[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(v, sizeof(v), fmt, ap);
    va_end(ap);
    pair(arr, key, v);
}

/* First line of path, without its newline; "" when unreadable. */
static void read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");

    buf[0] = '\0';
    if (f && fgets(buf, (int)len, f))
        buf[strcspn(buf, "\n")] = '\0';
    if (f)
        fclose(f);
}

/* The value of "key : value" in /proc/cpuinfo's first processor, or -1. */
static double cpuinfo_num(const char *key)
{
    FILE *f = fopen("/proc/cpuinfo", "re");
    char line[512];
    double v = -1;
    size_t klen = strlen(key);

    while (f && fgets(line, sizeof(line), f)) {
        char *colon = strchr(line, ':');
        if (!strncmp(line, key, klen) && (line[klen] == ' ' || line[klen] == '\t') &&
            colon) {
            v = strtod(colon + 1, NULL);
            break;
        }
    }
    if (f)
        fclose(f);
    return v;
}

/* The last number of a cpu list "0-3,5" (sysfs "possible"), or -1. */
static long last_cpu(const char *path)
{
    char buf[256];
    const char *p;

    read_line(path, buf, sizeof(buf));
    p = buf + strlen(buf);
    while (p > buf && p[-1] >= '0' && p[-1] <= '9')
        p--;
    return *p ? strtol(p, NULL, 10) : -1;
}

static unsigned count_nodes(void)
{
    DIR *d = opendir("/sys/devices/system/node");
    struct dirent *e;
    unsigned n = 0;

    while (d && (e = readdir(d))) {
        if (!strncmp(e->d_name, "node", 4) && e->d_name[4] >= '0' && e->d_name[4] <= '9')
            n++;
    }
    if (d)
        closedir(d);
    return n ? n : 1;
}

static void add_nodeinfo(json_object *arr)
{
    struct utsname u;

    if (uname(&u) < 0)
        memset(&u, 0, sizeof(u));
    pair(arr, "host", u.nodename);
    pair(arr, "release", u.release);
    pair(arr, "version", u.version);
    pair(arr, "machine", u.machine);
}

/* Xen's featureset words 0-7: CPUID 1.edx, 1.ecx, e1.edx, e1.ecx, 0xd.1.eax,
 * 7.0.ebx, 7.0.ecx, e7.edx. */
static void hw_caps(uint32_t w[8])
{
    unsigned a, b, c, d, max = __get_cpuid_max(0, NULL),
                         emax = __get_cpuid_max(0x80000000, NULL);

    memset(w, 0, 8 * sizeof(w[0]));
    if (max >= 1 && __get_cpuid(1, &a, &b, &c, &d))
        w[0] = d, w[1] = c;
    if (emax >= 0x80000001 && __get_cpuid(0x80000001, &a, &b, &c, &d))
        w[2] = d, w[3] = c;
    if (max >= 0xd && __get_cpuid_count(0xd, 1, &a, &b, &c, &d))
        w[4] = a;
    if (max >= 7 && __get_cpuid_count(7, 0, &a, &b, &c, &d))
        w[5] = b, w[6] = c;
    if (emax >= 0x80000007 && __get_cpuid(0x80000007, &a, &b, &c, &d))
        w[7] = d;
}

static bool param_on(const char *path)
{
    char v[16];

    read_line(path, v, sizeof(v));
    return v[0] == 'Y' || v[0] == 'y' || v[0] == '1';
}

/* hvm: KVM is there (PVH domains are HVM containers); hap: with EPT/NPT;
 * grant tables v1 only (GNTTABOP_set_version refuses 2). */
static void add_virt_caps(json_object *arr)
{
    bool kvm = access("/dev/kvm", F_OK) == 0;
    bool hap = param_on("/sys/module/kvm_intel/parameters/ept") ||
               param_on("/sys/module/kvm_amd/parameters/npt");

    pairf(arr, "virt_caps", "%s%sgnttab-v1", kvm ? "hvm " : "", kvm && hap ? "hap " : "");
}

static void add_physinfo(json_object *arr, uint64_t free_mib)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    double cores = cpuinfo_num("cpu cores"), siblings = cpuinfo_num("siblings");
    double mhz = cpuinfo_num("cpu MHz");
    struct ts_hostinfo hi;
    uint32_t w[8];
    long khz;

    ts_hostinfo(&hi);
    pairf(arr, "nr_cpus", "%ld", cpus > 0 ? cpus : 1);
    pairf(arr, "max_cpu_id", "%ld", last_cpu("/sys/devices/system/cpu/possible"));
    pairf(arr, "nr_nodes", "%u", count_nodes());
    pairf(arr, "cores_per_socket", "%d", cores > 0 ? (int)cores : 1);
    pairf(arr, "threads_per_core", "%d",
          cores > 0 && siblings >= cores ? (int)(siblings / cores) : 1);
    khz = mhz > 0 ? (long)(mhz * 1000 + 0.5) : 0;
    pairf(arr, "cpu_mhz", "%ld.%03ld", khz / 1000, khz % 1000);
    hw_caps(w);
    pairf(arr, "hw_caps", "%08x:%08x:%08x:%08x:%08x:%08x:%08x:%08x", w[0], w[1], w[2],
          w[3], w[4], w[5], w[6], w[7]);
    add_virt_caps(arr);
    pairf(arr, "total_memory", "%" PRIu64, hi.mem_total_mib);
    pairf(arr, "free_memory", "%" PRIu64, free_mib);
    pair(arr, "free_cpus", "0"); /* no CPU pools: every CPU serves the one pool */
}

struct build_id {
    char hex[2 * 64 + 1];
};

/* NT_GNU_BUILD_ID of the main program. */
static int find_build_id(struct dl_phdr_info *info, size_t size, void *data)
{
    struct build_id *id = data;

    (void)size;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr),
                   *end = p + ph->p_memsz;
        if (ph->p_type != PT_NOTE)
            continue;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)p;
            const unsigned char *desc =
                (const unsigned char *)p + sizeof(*n) + ((n->n_namesz + 3) & ~3u);
            if (n->n_type == NT_GNU_BUILD_ID && n->n_descsz <= 64 &&
                (const char *)desc + n->n_descsz <= end) {
                for (unsigned j = 0; j < n->n_descsz; j++)
                    snprintf(id->hex + 2 * j, 3, "%02x", desc[j]);
                return 1;
            }
            p = (const char *)desc + ((n->n_descsz + 3) & ~3u);
        }
    }
    return 1; /* only the first object: the program itself */
}

static void add_xeninfo(json_object *arr)
{
    struct build_id id = {{0}};
    char cmdline[4096];

    pairf(arr, "xen_major", "%d", HV_XEN_MAJOR);
    pairf(arr, "xen_minor", "%d", HV_XEN_MINOR);
    pair(arr, "xen_extra", XLINFO_XEN_EXTRA);
    pairf(arr, "xen_version", "%d.%d%s", HV_XEN_MAJOR, HV_XEN_MINOR, XLINFO_XEN_EXTRA);
    pair(arr, "xen_caps", XLINFO_XEN_CAPS);
    pair(arr, "xen_scheduler", "linux"); /* vCPUs are threads of the host's scheduler */
    pairf(arr, "xen_pagesize", "%ld", sysconf(_SC_PAGESIZE));
    pair(arr, "platform_params", "virt_start=" XLINFO_VIRT_START);
    pair(arr, "xen_changeset", XLINFO_XEN_CHANGESET);
    read_line("/proc/cmdline", cmdline, sizeof(cmdline));
    pair(arr, "xen_commandline", cmdline);
#if defined(__clang__)
    pair(arr, "cc_compiler", "clang " __clang_version__);
#elif defined(__GNUC__)
    pair(arr, "cc_compiler", "gcc " __VERSION__);
#else
    pair(arr, "cc_compiler", "");
#endif
    pair(arr, "cc_compile_by", "");     /* not recorded by the build */
    pair(arr, "cc_compile_domain", ""); /* not recorded by the build */
    pair(arr, "cc_compile_date", __DATE__ " " __TIME__);
    dl_iterate_phdr(find_build_id, &id);
    pair(arr, "build_id", id.hex);
    pair(arr, "xend_config_format", "4");
}

json_object *ts_xlinfo(uint64_t free_mib)
{
    json_object *arr = json_object_new_array();

    add_nodeinfo(arr);
    add_physinfo(arr, free_mib);
    add_xeninfo(arr);
    return arr;
}
