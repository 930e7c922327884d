/* The save image: a versioned record stream (docs/save-image.md), modelled
 * on Xen's libxc migration stream v2.
 *
 *   header:  magic "DOMUSIMG", u32 version, u32 flags (0), u32 config
 *            length, u32 reserved (0), the domain's config (a JSON object),
 *            zero padding to 8 bytes
 *   records: u32 type, u32 body length, body, zero padding to 8 bytes;
 *            bit 31 of the type marks a record a reader may skip
 *   end:     type SIMG_REC_END, body u32 crc32 (zlib) of every byte before
 *            the end record, u32 reserved (0)
 *
 * All integers are little-endian.  A reader refuses a wrong magic or
 * version, a record longer than SIMG_MAX_BODY, non-zero padding, an unknown
 * record type without the optional bit, a bad checksum and a stream that
 * stops before its end record, with a message saying which and at what
 * offset. */
#ifndef DOMUS_SAVEIMG_H
#define DOMUS_SAVEIMG_H

#include "domus/gmem.h"

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIMG_MAGIC "DOMUSIMG"
#define SIMG_MAGIC_LEN 8
#define SIMG_VERSION 1
#define SIMG_REC_OPTIONAL 0x80000000u
#define SIMG_MAX_CONFIG (1u << 20)
#define SIMG_MAX_BODY (4u << 20)
#define SIMG_BATCH_PAGES 512 /* pages per SIMG_REC_PAGE_DATA record, at most */

enum simg_rec_type {
    SIMG_REC_END = 0,
    SIMG_REC_PAGE_DATA = 1,    /* u32 n, u32 0, u64 pfn[n], n pages of data */
    SIMG_REC_VCPU_REGS = 2,    /* vCPU records: u32 vcpu, u32 0, the KVM struct */
    SIMG_REC_VCPU_SREGS = 3,   /* struct kvm_sregs */
    SIMG_REC_VCPU_XSAVE = 4,   /* struct kvm_xsave */
    SIMG_REC_VCPU_XCRS = 5,    /* struct kvm_xcrs */
    SIMG_REC_VCPU_MSRS = 6,    /* u32 vcpu, u32 n, n x (u32 index, u32 0, u64 value) */
    SIMG_REC_VCPU_LAPIC = 7,   /* struct kvm_lapic_state */
    SIMG_REC_VCPU_EVENTS = 8,  /* struct kvm_vcpu_events */
    SIMG_REC_VCPU_MPSTATE = 9, /* struct kvm_mp_state */
    SIMG_REC_CLOCK = 10,       /* u64 clock ns, u32 flags, u32 tsc kHz */
    SIMG_REC_HVM_PARAMS = 11,  /* hv_save.h: the records of the hv modules */
    SIMG_REC_HV_EVTCHN = 12,
    SIMG_REC_HV_GNTTAB = 13,
    SIMG_REC_HV_AREAS = 14,
    SIMG_REC_HV_TIMERS = 15,
    SIMG_REC_VCPU_TSC = 16,  /* u32 vcpu, u32 0, u64 TSC offset */
    SIMG_REC_HV_MEMRES = 17, /* memop.h: the memory reservation */
    /* Post-copy migration (docs/migration.md): u64 npages, u64 0, then
     * (npages + 63) / 64 u64 words, bit p set for memfd page p whose
     * latest contents the stream does not hold (the destination pulls it
     * from the source once the guest runs). */
    SIMG_REC_POSTCOPY = 18,
    SIMG_REC_HV_VMASST = 19, /* hv_save.h: vm_assist bits (optional) */
};

/* Name of a record type ("page data", ...) or NULL when unknown. */
const char *simg_rec_name(uint32_t type);

/* --- writing --- */

struct simg_writer {
    int fd;
    uint32_t crc;
    uint64_t bytes;        /* written so far */
    uint64_t page_bytes;   /* of which page data (for a progress line) */
    uint64_t zero_skipped; /* pages not written because they were zero */
    /* A rate limit (live migration's --bandwidth): bytes a second, 0 for
     * none.  Each write waits until the bytes written since the limit was
     * set fit the rate; rate_paused writes count but do not wait (a page
     * the destination asked for). */
    uint64_t rate;
    bool rate_paused;
    uint64_t rate_t0, rate_b0;
};

void simg_writer_init(struct simg_writer *w, int fd);
/* Sets w's rate limit (bytes a second, 0: none) from now on. */
void simg_writer_set_rate(struct simg_writer *w, uint64_t bytes_per_s);
/* Each returns 0 or -errno (a short write is -EIO; an empty config
 * -EINVAL, one over SIMG_MAX_CONFIG -E2BIG). */
int simg_write_header(struct simg_writer *w, const char *config_json);
int simg_write_record(struct simg_writer *w, uint32_t type, const void *body, size_t len);
/* A record whose body is head then data (no copy of data). */
int simg_write_record2(struct simg_writer *w, uint32_t type, const void *head,
                       size_t hlen, const void *data, size_t dlen);
int simg_write_end(struct simg_writer *w);

/* Writes the guest memory of m (low RAM, high RAM, the special pages) as
 * SIMG_REC_PAGE_DATA records of at most SIMG_BATCH_PAGES pages; pages that
 * are all zero are left out (a restored memfd starts zeroed).  The extra
 * pages belong to the grant table record. */
int simg_write_memory(struct simg_writer *w, const struct gmem *m);

/* Writes the pages of m whose bits are set in bm (npages bits, by memfd
 * page: gmem_dirty_npages), zero pages too (a page that became zero since
 * an earlier round must be sent again), as page data records.  A reader
 * takes a pfn's last record: live migration's rounds send pages again. */
int simg_write_pages(struct simg_writer *w, const struct gmem *m, const uint64_t *bm,
                     uint64_t npages);

/* Writes the memfd pages pages[0..n) of m (each < gmem_dirty_npages) as
 * page data records, zero pages too.  0 or -errno (-EFAULT: a page out of
 * range). */
int simg_write_page_list(struct simg_writer *w, const struct gmem *m,
                         const uint64_t *pages, size_t n);

/* Copies one stream from fd to out record by record, up to and with its
 * end record, reading nothing after it (live migration's receiver spools
 * the stream before restoring it; the restore checks the rest: checksum,
 * contents).  0; -EINVAL for a stream that is not one (no magic, a config
 * or record over the limits), -EPIPE when fd ends early ("truncated
 * stream: it ends at byte N"), or -errno; err says which. */
int simg_spool(int fd, int out, char *err, size_t errlen);
/* Its two halves: the header (magic, version, config), then the records
 * up to and with the end; *at counts the bytes copied (start it at 0).
 * A write to out that fails: -EIO. */
int simg_spool_header(int fd, int out, uint64_t *at, char *err, size_t errlen);
int simg_spool_records(int fd, int out, uint64_t *at, char *err, size_t errlen);

/* One vCPU's architectural state, as KVM gives it (KVM_GET_REGS, _SREGS,
 * _XSAVE, _XCRS, _MSRS, _LAPIC, _VCPU_EVENTS, _MP_STATE, and the TSC offset
 * attribute); each piece is one record. */
#define SIMG_MAX_MSRS 256
struct simg_vcpu {
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    uint32_t xsave[1024]; /* struct kvm_xsave's region (KVM_GET_XSAVE, 4 KiB) */
    struct kvm_xcrs xcrs;
    uint32_t nr_msrs;
    struct kvm_msr_entry msrs[SIMG_MAX_MSRS];
    struct kvm_lapic_state lapic;
    struct kvm_vcpu_events events;
    struct kvm_mp_state mp_state;
    uint64_t tsc_offset;
    uint32_t have; /* on load: bit (1 << type) for each record read */
};
#define SIMG_VCPU_ALL                                                                    \
    ((1u << SIMG_REC_VCPU_REGS) | (1u << SIMG_REC_VCPU_SREGS) |                          \
     (1u << SIMG_REC_VCPU_XSAVE) | (1u << SIMG_REC_VCPU_XCRS) |                          \
     (1u << SIMG_REC_VCPU_MSRS) | (1u << SIMG_REC_VCPU_LAPIC) |                          \
     (1u << SIMG_REC_VCPU_EVENTS) | (1u << SIMG_REC_VCPU_MPSTATE) |                      \
     (1u << SIMG_REC_VCPU_TSC))

/* The clock: KVM_GET_CLOCK's nanoseconds and flags, and the TSC frequency. */
struct simg_clock {
    uint64_t clock_ns;
    uint32_t flags;
    uint32_t tsc_khz;
};

/* Writes vCPU id's records. */
int simg_write_vcpu(struct simg_writer *w, uint32_t id, const struct simg_vcpu *s);
int simg_write_clock(struct simg_writer *w, const struct simg_clock *c);

/* --- reading --- */

struct simg_reader {
    int fd;             /* source, or -1 when reading mem */
    const uint8_t *mem; /* in-memory source (tests, the fuzzer) */
    size_t mem_len;
    uint64_t off; /* bytes consumed */
    uint32_t crc;
    uint8_t *body; /* the current record's body (owned) */
    size_t body_cap;
    /* Index mode (a lazy restore's first pass): page data records are not
     * read, only their pfns (simg_rec.data_off says where the pages are);
     * the end record's checksum cannot be checked then and is not. */
    bool index_only;
    bool skipped;    /* index mode skipped page data: the crc is not known */
    uint64_t size;   /* the fd's size (index mode), 0 until known */
    uint64_t end_ns; /* CLOCK_REALTIME when vm_restore_body verified the end */
    /* Not NULL (an fd source, not index mode): page data records are read
     * straight into this memory (no copy through body), rec.loaded. */
    const struct gmem *pages_to;
    char err[256];
};

void simg_reader_init_fd(struct simg_reader *r, int fd);
void simg_reader_init_mem(struct simg_reader *r, const void *p, size_t len);
void simg_reader_free(struct simg_reader *r);

/* Reads and checks the header; *config gets the config (malloc'd, NUL
 * terminated, a JSON object).  0 or -EINVAL with r->err set. */
int simg_read_header(struct simg_reader *r, char **config);

struct simg_rec {
    uint32_t type; /* with SIMG_REC_OPTIONAL as read */
    uint32_t len;
    const uint8_t *body; /* valid until the next read */
    /* Index mode, page data: body holds only u32 n, u32 0, u64 pfn[n] (len
     * is still the record's); the n pages start at byte data_off of the
     * image.  0 otherwise. */
    uint64_t data_off;
    /* Page data read straight into the reader's pages_to: body holds only
     * u32 n, u32 0, u64 pfn[n]; the pages are in place already. */
    bool loaded;
};

/* Reads the next record: 1 and *rec, or 0 at a verified end record, or
 * -EINVAL with r->err ("truncated image: ...", "checksum mismatch", ...). */
int simg_read_record(struct simg_reader *r, struct simg_rec *rec);

/* Loads one SIMG_REC_PAGE_DATA body into m; every pfn must lie in RAM or
 * the special pages.  0 or -EINVAL with err set. */
int simg_load_pages(const struct gmem *m, const void *body, size_t len, char *err,
                    size_t errlen);

/* Index mode's page data record: checks it as simg_load_pages does and
 * sets index[page] = data_off + 4096 * i + 1 for the i-th pfn, page being
 * its page in the memfd (gmem_fd_offset / 4096); index has one entry per
 * page of RAM and the special pages.  0 or -EINVAL with err set. */
int simg_index_pages(const struct gmem *m, const struct simg_rec *rec, uint64_t *index,
                     char *err, size_t errlen);

/* Loads one vCPU record (any SIMG_REC_VCPU_* type) into vcpus[its id];
 * the id must be below nr and each record appear once.  0 or -EINVAL. */
int simg_load_vcpu_record(struct simg_vcpu *vcpus, unsigned nr,
                          const struct simg_rec *rec, char *err, size_t errlen);
/* 0 when every vCPU below nr has all its records; -EINVAL naming the first
 * missing one otherwise. */
int simg_vcpus_complete(const struct simg_vcpu *vcpus, unsigned nr, char *err,
                        size_t errlen);
int simg_load_clock(struct simg_clock *c, const struct simg_rec *rec, char *err,
                    size_t errlen);

/* A restore's record handlers: fn gets the body; 0 or -errno with err set. */
struct simg_handler {
    uint32_t type;
    int (*fn)(void *ctx, const struct simg_rec *rec, char *err, size_t errlen);
};

/* Reads records to the end, giving each to the handler of its type.  A
 * record without a handler is skipped when optional and refused otherwise
 * ("unknown mandatory record type N at offset O").  0 or -errno with
 * r->err set. */
int simg_read_all(struct simg_reader *r, const struct simg_handler *h, size_t nh,
                  void *ctx);

#endif
