/* xl.cfg parser: the subset of xl's domain configuration Domus understands.
 *
 * Syntax as xl's (docs/man/xl.cfg.5): `KEY = VALUE` lines, VALUE a number,
 * a "string" or 'string', or a [ list, of, strings ]; `#` comments; `;`
 * optional at end of line.  Type mismatches and out-of-range values of the
 * keys Domus uses are errors ("file:line: message").
 *
 * A config from a Xen host works: a key Domus does not use (unknown, or one
 * that does not apply to a PVH domain: vnc, pool, ...) is
 * ignored with a warning naming it ("file:line: ignoring key 'foo'
 * ..."), as xl ignores keys it does not know.  A key whose absence would change
 * what the guest gets stays an error while it is set to something (a
 * non-empty list or string, a non-zero number): pci, dtdev, iomem, ioports,
 * irqs, usb, usbctrl, usbdev, usbdevice, vfb, vkb, vtpm, vdispl, vsnd,
 * channel, p9, pvcalls, vuart, bootloader, device_tree, cpuid, vnuma,
 * nestedhvm, altp2m, rdm; so are type = "hvm" and builder = "hvm".
 * type = "pv" (and builder = "generic") boots as PVH with a warning: Domus
 * has no PV mode, the kernel must support PVH.  Without type (xl's default
 * is PV) the domain is PVH, with a warning saying so. */
#ifndef DOMUS_XLCFG_H
#define DOMUS_XLCFG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

enum xlcfg_action {
    XLCFG_ACTION_DESTROY = 0,
    XLCFG_ACTION_RESTART,
    XLCFG_ACTION_PRESERVE,
};

#define XLCFG_NAME_MAX 64
#define XLCFG_CMDLINE_MAX 2048
#define XLCFG_MAX_VCPUS 128
#define XLCFG_MAX_DISKS 16
#define XLCFG_MAX_VIFS 8
#define XLCFG_MEMORY_MIN_MB 32
#define XLCFG_MEMORY_MAX_MB (4ULL << 20) /* 4 TiB: anything above is absurd */
#define XLCFG_UUID_LEN 36                /* xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx */
#define XLCFG_MAX_WARNINGS 32
#define XLCFG_WARNING_LEN 192

struct xlcfg {
    char name[XLCFG_NAME_MAX];       /* required; [A-Za-z0-9_.-]+ */
    char type[8];                    /* "pvh" (default "pvh"; others rejected for now) */
    char uuid[XLCFG_UUID_LEN + 1];   /* "" when absent; lower-case canonical form */
    char kernel[PATH_MAX];           /* required */
    char ramdisk[PATH_MAX];          /* "" when absent */
    char cmdline[XLCFG_CMDLINE_MAX]; /* from cmdline, or built from root + extra as xl
                                        does */
    uint64_t memory_mb;              /* default 128 */
    uint64_t maxmem_mb;              /* default = memory_mb; must be >= memory_mb */
    unsigned vcpus;                  /* default 1 */
    unsigned maxvcpus;               /* default = vcpus */
    unsigned cpu_weight;             /* credit weight 1..65535, default 256 (sched.h) */
    unsigned cap;                    /* percent of one CPU, 0 = no cap (default) */
    char cpus[256];                  /* every vCPU's hard affinity; "" = all */
    char cpus_soft[256];             /* soft affinity (recorded only); "" = all */
    enum xlcfg_action on_poweroff;   /* default destroy */
    enum xlcfg_action on_reboot;     /* default restart */
    enum xlcfg_action on_crash;      /* default destroy */
    unsigned n_disks;
    char disks[XLCFG_MAX_DISKS][512]; /* raw xl disk spec strings, parsed later */
    unsigned n_vifs;
    char vifs[XLCFG_MAX_VIFS][512]; /* raw xl vif spec strings, parsed later */
    /* Warnings of the parse, "fname:line: ..."; n_warnings counts
     * them all, only the first XLCFG_MAX_WARNINGS are kept. */
    unsigned n_warnings;
    char warnings[XLCFG_MAX_WARNINGS][XLCFG_WARNING_LEN];
};

/* Parses text (named fname in messages).  0 on success; -EINVAL with
 * "fname:line: message" in err otherwise.  Relative kernel/ramdisk paths are
 * kept as written. */
int xlcfg_parse_string(const char *text, const char *fname, struct xlcfg *cfg, char *err,
                       size_t errlen);

/* Reads and parses a file; -ENOENT etc. with "fname: strerror" in err. */
int xlcfg_parse_file(const char *path, struct xlcfg *cfg, char *err, size_t errlen);

/* Text of len bytes that will be handed to xlcfg_parse_string: -EINVAL with
 * "fname:line: NUL byte in configuration" when it holds a NUL byte, else 0. */
int xlcfg_check_text(const char *text, size_t len, const char *fname, char *err,
                     size_t errlen);

const char *xlcfg_action_name(enum xlcfg_action a);

/* A random (version 4, RFC 4122) UUID in canonical lower-case form, as xl
 * generates one for a config without uuid; 0 or -errno of getrandom(2). */
int xlcfg_uuid_generate(char out[XLCFG_UUID_LEN + 1]);

#endif
