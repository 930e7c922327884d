/* PVH domain build: kernel, ramdisk, command line, ACPI, memory map and
 * struct hvm_start_info, laid out as builder.h describes. */
#include "domus/builder.h"
#include "domus/util.h"
#include "builder_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xen/arch-x86/hvm/start_info.h>

#define LOW_RAM_END 0xA0000ULL
#define ALIGN8(x) (((x) + 7) & ~7ULL)
#define PAGE_MASK_B (DOMUS_PAGE_SIZE - 1)

int builder_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    if (!err || !errlen)
        return rc;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

uint16_t builder_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

uint32_t builder_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

uint64_t builder_le64(const uint8_t *p)
{
    return builder_le32(p) | (uint64_t)builder_le32(p + 4) << 32;
}

static void memmap_add(struct hvm_memmap_table_entry *e, unsigned *n, uint64_t addr,
                       uint64_t size, uint32_t type)
{
    e[*n] = (struct hvm_memmap_table_entry){.addr = addr, .size = size, .type = type};
    (*n)++;
}

unsigned builder_memmap(const struct gmem *m, struct hvm_memmap_table_entry *e)
{
    unsigned n = 0;

    memmap_add(e, &n, 0, LOW_RAM_END, XEN_HVM_MEMMAP_TYPE_RAM);
    memmap_add(e, &n, LOW_RAM_END, BUILDER_LOAD_MIN - LOW_RAM_END,
               XEN_HVM_MEMMAP_TYPE_RESERVED);
    memmap_add(e, &n, BUILDER_LOAD_MIN, m->low_end - BUILDER_LOAD_MIN,
               XEN_HVM_MEMMAP_TYPE_RAM);
    memmap_add(e, &n, GMEM_SPECIAL_BASE, GMEM_SPECIAL_PAGES * DOMUS_PAGE_SIZE,
               XEN_HVM_MEMMAP_TYPE_RESERVED);
    if (m->high_size)
        memmap_add(e, &n, GMEM_HIGH_BASE, m->high_size, XEN_HVM_MEMMAP_TYPE_RAM);
    return n;
}

/* Opens a regular file for reading; *size is its length. */
static int open_file(const char *what, const char *path, int *fd, uint64_t *size,
                     char *err, size_t errlen)
{
    struct stat st;
    int rc;

    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return builder_fail(err, errlen, -errno, "%s %s: %s", what, path,
                            strerror(errno));
    if (fstat(*fd, &st) < 0) {
        rc = builder_fail(err, errlen, -errno, "%s %s: %s", what, path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = builder_fail(err, errlen, -EINVAL, "%s %s: not a regular file", what, path);
        goto out;
    }
    *size = (uint64_t)st.st_size;
    return 0;
out:
    close(*fd);
    *fd = -1;
    return rc;
}

#define BUF_MMAP_MIN (1u << 20)

void *builder_buf_alloc(size_t len)
{
    if (len < BUF_MMAP_MIN)
        return malloc(len);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    madvise(p, len, MADV_POPULATE_WRITE); /* best effort: Linux >= 5.14 */
    return p;
}

void builder_buf_free(void *p, size_t len)
{
    if (len < BUF_MMAP_MIN)
        free(p);
    else if (p)
        munmap(p, len);
}

/* Reads exactly len bytes from fd at offset 0 into dst. */
static int read_all(int fd, uint8_t *dst, uint64_t len)
{
    uint64_t done = 0;

    while (done < len) {
        size_t chunk = len - done > (1u << 30) ? (1u << 30) : (size_t)(len - done);
        ssize_t n = pread(fd, dst + done, chunk, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO; /* file shrank while reading */
        done += (uint64_t)n;
    }
    return 0;
}

static int read_kernel(const char *path, uint8_t **buf, size_t *len, char *err,
                       size_t errlen)
{
    uint64_t size;
    int fd, rc;

    *buf = NULL;
    rc = open_file("kernel", path, &fd, &size, err, errlen);
    if (rc)
        return rc;
    if (size == 0 || size > BUILDER_KERNEL_FILE_MAX) {
        rc = builder_fail(err, errlen, -EINVAL, "kernel %s: implausible size %llu bytes",
                          path, (unsigned long long)size);
        goto out;
    }
    *buf = builder_buf_alloc(size);
    if (!*buf) {
        rc = builder_fail(err, errlen, -ENOMEM, "kernel %s: out of memory", path);
        goto out;
    }
    rc = read_all(fd, *buf, size);
    if (rc) {
        builder_fail(err, errlen, rc, "kernel %s: read: %s", path, strerror(-rc));
        builder_buf_free(*buf, size);
        *buf = NULL;
        goto out;
    }
    *len = size;
out:
    close(fd);
    return rc;
}

/* Monotonic seconds, for the debug timings of the builder's steps. */
static double secs(void)
{
    return (double)dnow_ns() / 1e9;
}

static int load_kernel(struct gmem *m, const char *path, uint64_t *entry, uint64_t *end,
                       char *err, size_t errlen)
{
    uint8_t *file = NULL, *elf = NULL;
    size_t len = 0, elf_len = 0;
    int owned = 0, rc;
    double t0 = secs(), t1 = 0, t2 = 0;

    rc = read_kernel(path, &file, &len, err, errlen);
    if (rc)
        goto out;
    t1 = secs();
    rc = builder_kernel_to_elf(file, len, &elf, &elf_len, &owned, err, errlen);
    if (rc)
        goto out;
    t2 = secs();
    rc = builder_load_elf(m, elf, elf_len, entry, end, err, errlen);
    dlog_debug("builder: kernel read %.3f s, decompressed %.3f s, loaded %.3f s", t1 - t0,
               t2 - t1, secs() - t2);
out:
    if (owned)
        builder_buf_free(elf, elf_len);
    builder_buf_free(file, len);
    return rc;
}

/* Highest page-aligned base for size bytes in [lo, top), or 0 when none. */
static uint64_t place_high(uint64_t lo, uint64_t top, uint64_t size)
{
    uint64_t base;

    lo = (lo + PAGE_MASK_B) & ~PAGE_MASK_B;
    top &= ~PAGE_MASK_B;
    if (size > top)
        return 0;
    base = (top - size) & ~PAGE_MASK_B;
    return base >= lo ? base : 0;
}

static int load_ramdisk(struct gmem *m, const char *path, uint64_t kernel_end,
                        uint64_t *gpa, uint64_t *size, char *err, size_t errlen)
{
    uint64_t top = m->low_end < GMEM_SPECIAL_BASE ? m->low_end : GMEM_SPECIAL_BASE;
    uint8_t *dst;
    int fd, rc;

    rc = open_file("ramdisk", path, &fd, size, err, errlen);
    if (rc)
        return rc;
    if (*size == 0) {
        rc = builder_fail(err, errlen, -EINVAL, "ramdisk %s: empty file", path);
        goto out;
    }
    *gpa = place_high(kernel_end > BUILDER_LOAD_MIN ? kernel_end : BUILDER_LOAD_MIN, top,
                      *size);
    dst = *gpa ? gmem_prepare(m, *gpa, *size) : NULL;
    if (!dst) {
        rc = builder_fail(err, errlen, -ENOMEM,
                          "ramdisk %s (%llu bytes) does not fit in guest memory between "
                          "the kernel end %#llx and %#llx",
                          path, (unsigned long long)*size, (unsigned long long)kernel_end,
                          (unsigned long long)top);
        goto out;
    }
    rc = read_all(fd, dst, *size);
    if (rc)
        builder_fail(err, errlen, rc, "ramdisk %s: read: %s", path, strerror(-rc));
out:
    close(fd);
    return rc;
}

static int write_cmdline(struct gmem *m, const char *cmdline, char *err, size_t errlen)
{
    size_t len = cmdline ? strlen(cmdline) : 0;

    if (len > BUILDER_CMDLINE_MAX - 1)
        return builder_fail(err, errlen, -EINVAL,
                            "command line too long (%zu bytes, at most %d)", len,
                            BUILDER_CMDLINE_MAX - 1);
    if (gmem_write(m, BUILDER_CMDLINE_GPA, cmdline ? cmdline : "", len + 1))
        return builder_fail(err, errlen, -EFAULT, "cannot write the command line");
    return 0;
}

/* start_info, then the module list, then the memory map (builder.h). */
static int write_start_info(struct gmem *m, uint64_t rd_gpa, uint64_t rd_size,
                            uint64_t rsdp)
{
    struct hvm_memmap_table_entry map[BUILDER_MEMMAP_MAX];
    struct hvm_modlist_entry mod = {.paddr = rd_gpa, .size = rd_size};
    uint64_t mod_gpa = BUILDER_START_INFO_GPA + ALIGN8(sizeof(struct hvm_start_info));
    uint64_t map_gpa = mod_gpa + sizeof(mod);
    struct hvm_start_info si = {
        .magic = XEN_HVM_START_MAGIC_VALUE,
        .version = 1,
        .nr_modules = rd_size ? 1 : 0,
        .modlist_paddr = rd_size ? mod_gpa : 0,
        .cmdline_paddr = BUILDER_CMDLINE_GPA,
        .rsdp_paddr = rsdp,
        .memmap_paddr = map_gpa,
        .memmap_entries = builder_memmap(m, map),
    };

    if (gmem_write(m, BUILDER_START_INFO_GPA, &si, sizeof(si)) ||
        (rd_size && gmem_write(m, mod_gpa, &mod, sizeof(mod))) ||
        gmem_write(m, map_gpa, map, si.memmap_entries * sizeof(map[0])))
        return -EFAULT;
    return 0;
}

static int check_args(const struct gmem *m, const struct build_args *a, char *err,
                      size_t errlen)
{
    if (!a->kernel || !a->kernel[0])
        return builder_fail(err, errlen, -EINVAL, "no kernel given");
    if (a->vcpus < 1 || a->vcpus > BUILDER_MAX_VCPUS)
        return builder_fail(err, errlen, -EINVAL, "vcpus %u out of range 1..%d", a->vcpus,
                            BUILDER_MAX_VCPUS);
    if (!m->host || m->low_end <= BUILDER_LOAD_MIN)
        return builder_fail(err, errlen, -EINVAL, "guest memory not initialised");
    return 0;
}

int builder_build_pvh(struct gmem *m, const struct build_args *a,
                      struct build_result *out, char *err, size_t errlen)
{
    uint64_t entry = 0, kend = 0, rd_gpa = 0, rd_size = 0, rsdp = 0;
    int rc;

    rc = check_args(m, a, err, errlen);
    if (rc)
        goto out;
    rc = write_cmdline(m, a->cmdline, err, errlen);
    if (rc)
        goto out;
    rc = load_kernel(m, a->kernel, &entry, &kend, err, errlen);
    if (rc)
        goto out;
    if (a->ramdisk && a->ramdisk[0]) {
        rc = load_ramdisk(m, a->ramdisk, kend, &rd_gpa, &rd_size, err, errlen);
        if (rc)
            goto out;
    }
    rc = builder_write_acpi(m, a->vcpus, &rsdp);
    if (rc) {
        builder_fail(err, errlen, rc, "cannot write the ACPI tables: %s", strerror(-rc));
        goto out;
    }
    rc = write_start_info(m, rd_gpa, rd_size, rsdp);
    if (rc) {
        builder_fail(err, errlen, rc, "cannot write start_info");
        goto out;
    }
    out->entry = entry;
    out->start_info_gpa = BUILDER_START_INFO_GPA;
    dlog_debug("builder: entry %#llx kernel end %#llx ramdisk %#llx+%#llx rsdp %#llx",
               (unsigned long long)entry, (unsigned long long)kend,
               (unsigned long long)rd_gpa, (unsigned long long)rd_size,
               (unsigned long long)rsdp);
out:
    return rc;
}
