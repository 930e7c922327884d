/* Grant tables, version 1.
 *
 * The guest's grant frames are pages of its own RAM that it names with
 * XENMEM_add_to_physmap(XENMAPSPACE_grant_table); the table is read in place.
 * Domain 0's back ends validate grants with gnttab_check before touching a
 * granted frame. */
#include "domus/hv.h"
#include "domus/util.h"

#include <errno.h>
#include <string.h>

#define ENTRIES_PER_FRAME (DOMUS_PAGE_SIZE / sizeof(grant_entry_v1_t))

/* Frame idx moves onto RAM (used in place): the extra page it had, at old
 * (0: none), leaves the guest's map and Domus's. */
static int unplace_frame(struct domain *d, unsigned idx, uint64_t old)
{
    if (!old)
        return 0;
    int rc = d->ops->map_extra(d, idx, 0, NULL);
    if (rc < 0)
        return rc; /* still mapped where it was, and still known there */
    gmem_unplace_extra(&d->mem, idx);
    return 0;
}

/* A grant frame at a RAM page is used in place; one outside RAM (Linux PVH
 * picks unpopulated addresses) is backed by an extra page of the domain.
 * A placement that fails leaves the frame where it was, content included. */
static int place_frame(struct domain *d, unsigned idx, uint64_t gpa)
{
    for (unsigned i = 0; i < GMEM_EXTRA_PAGES; i++)
        if (i != idx && gmem_region_gpa(&d->mem, GMEM_REGION_EXTRA + i) == gpa)
            return -EINVAL; /* another frame is there */
    uint64_t old = gmem_region_gpa(&d->mem, GMEM_REGION_EXTRA + idx);
    if (old == gpa)
        return 0;
    if (gmem_ptr(&d->mem, gpa, DOMUS_PAGE_SIZE))
        return unplace_frame(d, idx, old);
    void *host = gmem_place_extra(&d->mem, idx, gpa);
    if (!host)
        return -EINVAL;
    int rc = d->ops->map_extra(d, idx, gpa, host);
    if (rc == 0) {
        memset(host, 0, DOMUS_PAGE_SIZE);
        return 0;
    }
    /* Back where it was, for Domus and for the guest (map_extra dropped the
     * old placement first), or nowhere. */
    if (old && gmem_place_extra(&d->mem, idx, old) &&
        d->ops->map_extra(d, idx, old, host) == 0)
        return rc;
    gmem_unplace_extra(&d->mem, idx);
    if (old)
        dwarn("dom%u: grant frame %u lost its place at %#llx", d->domid, idx,
              (unsigned long long)old);
    return rc;
}

int gnttab_set_frame(struct domain *d, unsigned idx, uint64_t gpa)
{
    if (idx >= HV_GNTTAB_MAX_FRAMES || idx >= GMEM_EXTRA_PAGES)
        return -EINVAL;
    int rc = place_frame(d, idx, gpa);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&d->lock);
    __atomic_store_n(&d->gnt_frame_gpa[idx], gpa, __ATOMIC_RELEASE);
    if (idx >= d->gnt_nr_frames)
        __atomic_store_n(&d->gnt_nr_frames, idx + 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&d->lock);
    return 0;
}

static grant_entry_v1_t *entry(struct domain *d, grant_ref_t ref)
{
    /* Another vCPU may place a frame meanwhile (gnttab_set_frame): one
     * atomic read of each field. */
    unsigned frame = ref / ENTRIES_PER_FRAME;
    if (frame >= __atomic_load_n(&d->gnt_nr_frames, __ATOMIC_ACQUIRE))
        return NULL;
    uint64_t base = __atomic_load_n(&d->gnt_frame_gpa[frame], __ATOMIC_ACQUIRE);
    if (!base)
        return NULL;
    uint64_t gpa = base + (ref % ENTRIES_PER_FRAME) * sizeof(grant_entry_v1_t);
    return gmem_ptr(&d->mem, gpa, sizeof(grant_entry_v1_t));
}

int gnttab_check(struct domain *d, grant_ref_t ref, domid_t grantee, bool write,
                 uint64_t *gpa)
{
    grant_entry_v1_t *e = entry(d, ref), copy;
    if (!e)
        return GNTST_bad_gntref;
    /* One snapshot of the guest-writable entry; decide on that alone. */
    copy.flags = __atomic_load_n(&e->flags, __ATOMIC_ACQUIRE);
    copy.domid = __atomic_load_n(&e->domid, __ATOMIC_RELAXED);
    copy.frame = __atomic_load_n(&e->frame, __ATOMIC_RELAXED);
    if ((copy.flags & GTF_type_mask) != GTF_permit_access || copy.domid != grantee)
        return GNTST_permission_denied;
    if (write && (copy.flags & GTF_readonly))
        return GNTST_permission_denied;
    uint64_t addr = (uint64_t)copy.frame << DOMUS_PAGE_SHIFT;
    if (!gmem_ptr(&d->mem, addr, DOMUS_PAGE_SIZE))
        return GNTST_bad_page;
    *gpa = addr;
    return GNTST_okay;
}

_Static_assert(ARRAY_SIZE(((struct domain *)0)->gnt_active) ==
                   HV_GNTTAB_MAX_FRAMES * ENTRIES_PER_FRAME,
               "one active entry per grant ref");

/* The guest's entry's flags and domid as one 32-bit word, for the
 * compare-and-swap Xen does on them (the guest may change either at any
 * time). */
union gnt_combo {
    uint32_t raw;
    struct {
        uint16_t flags;
        domid_t domid;
    };
};

/* Sets GTF_reading (| GTF_writing) in e while it grants grantee that access;
 * GNTST_okay or why not.  A guest that keeps changing the entry gets
 * GNTST_general_error after a few tries, as from Xen. */
static int set_busy(grant_entry_v1_t *e, domid_t grantee, bool write)
{
    uint32_t *word = (uint32_t *)(void *)e;
    union gnt_combo cur = {.raw = __atomic_load_n(word, __ATOMIC_ACQUIRE)}, want;
    for (int tries = 0; tries < 4; tries++) {
        if ((cur.flags & GTF_type_mask) != GTF_permit_access || cur.domid != grantee)
            return GNTST_permission_denied;
        if (write && (cur.flags & GTF_readonly))
            return GNTST_permission_denied;
        want = cur;
        want.flags |= GTF_reading | (write ? GTF_writing : 0);
        if (__atomic_compare_exchange_n(word, &cur.raw, want.raw, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return GNTST_okay;
    }
    return GNTST_general_error;
}

static void clear_flags(grant_entry_v1_t *e, uint16_t flags)
{
    __atomic_fetch_and(&e->flags, (uint16_t)~flags, __ATOMIC_RELEASE);
}

int gnttab_map(struct domain *d, grant_ref_t ref, domid_t grantee, bool write,
               uint64_t *gpa)
{
    int rc;
    pthread_mutex_lock(&d->gnt_lock);
    grant_entry_v1_t *e = entry(d, ref);
    struct gnt_active *a = e ? &d->gnt_active[ref] : NULL;
    if (!e) {
        rc = GNTST_bad_gntref;
        goto out;
    }
    if (a->readers == UINT16_MAX || a->writers == UINT16_MAX) {
        rc = GNTST_no_device_space;
        goto out;
    }
    bool first = !a->readers && !a->writers;
    rc = set_busy(e, grantee, write);
    if (rc != GNTST_okay)
        goto out;
    if (first)
        a->frame = __atomic_load_n(&e->frame, __ATOMIC_ACQUIRE);
    uint64_t addr = (uint64_t)a->frame << DOMUS_PAGE_SHIFT;
    if (!gmem_ptr(&d->mem, addr, DOMUS_PAGE_SIZE)) {
        rc = GNTST_bad_page;
        clear_flags(e, (uint16_t)((first ? GTF_reading : 0) |
                                  (write && !a->writers ? GTF_writing : 0)));
        goto out;
    }
    if (write) { /* Domus's writes are not in KVM's dirty log */
        a->writers++;
        gmem_mark_dirty(&d->mem, addr, DOMUS_PAGE_SIZE);
    } else
        a->readers++;
    *gpa = addr;
out:
    pthread_mutex_unlock(&d->gnt_lock);
    return rc;
}

void gnttab_unmap(struct domain *d, grant_ref_t ref, bool write)
{
    pthread_mutex_lock(&d->gnt_lock);
    grant_entry_v1_t *e = entry(d, ref);
    struct gnt_active *a = ref < ARRAY_SIZE(d->gnt_active) ? &d->gnt_active[ref] : NULL;
    if (a && write && a->writers) {
        a->writers--; /* written until now: dirty again after the last round */
        gmem_mark_dirty(&d->mem, (uint64_t)a->frame << DOMUS_PAGE_SHIFT, DOMUS_PAGE_SIZE);
    } else if (a && !write && a->readers)
        a->readers--;
    if (e && a && !a->writers)
        clear_flags(e, (uint16_t)(GTF_writing | (a->readers ? 0 : GTF_reading)));
    pthread_mutex_unlock(&d->gnt_lock);
}

static int op_query_size(struct vcpu *v, struct gnttab_query_size *q)
{
    if (q->dom != DOMID_SELF && q->dom != v->d->domid) {
        q->status = GNTST_bad_domain;
        return 0;
    }
    q->nr_frames = v->d->gnt_nr_frames ? v->d->gnt_nr_frames : 1;
    q->max_nr_frames = HV_GNTTAB_MAX_FRAMES;
    q->status = GNTST_okay;
    return 0;
}

static int op_set_version(struct vcpu *v, struct gnttab_set_version *s)
{
    (void)v;
    if (s->version != 1) {
        s->version = 1;
        return -EOPNOTSUPP;
    }
    return 0;
}

static int op_get_version(struct vcpu *v, struct gnttab_get_version *g)
{
    if (g->dom != DOMID_SELF && g->dom != v->d->domid)
        return -ESRCH;
    g->version = 1;
    return 0;
}

/* Auto-translated guests map frames with add_to_physmap; setup_table only
 * reports the size, with no frame list. */
static int op_setup_table(struct vcpu *v, struct gnttab_setup_table *s)
{
    if (s->dom != DOMID_SELF && s->dom != v->d->domid)
        s->status = GNTST_bad_domain;
    else if (s->nr_frames > HV_GNTTAB_MAX_FRAMES)
        s->status = GNTST_general_error;
    else
        s->status = GNTST_okay;
    return 0;
}

/* Resolves one side of a copy to a host pointer into this domain's memory,
 * looked up once: another vCPU may move a grant frame at any time, and a
 * second lookup could then fail.  A grant side is mapped (*mapped set) and
 * needs gnttab_unmap. */
static int16_t copy_side(struct vcpu *v, const struct gnttab_copy_ptr *p, bool gref,
                         bool write, uint16_t len, uint8_t **host, bool *mapped)
{
    struct domain *d = v->d;
    *mapped = false;
    if (p->domid != DOMID_SELF && p->domid != d->domid)
        return GNTST_bad_domain;
    if ((uint32_t)p->offset + len > DOMUS_PAGE_SIZE)
        return GNTST_bad_copy_arg;
    uint64_t base;
    if (gref) {
        int rc = gnttab_map(d, p->u.ref, (domid_t)d->domid, write, &base);
        if (rc != GNTST_okay)
            return (int16_t)rc;
        *mapped = true;
    } else {
        if (p->u.gmfn >= (1ULL << (64 - DOMUS_PAGE_SHIFT)))
            return GNTST_bad_page;
        base = (uint64_t)p->u.gmfn << DOMUS_PAGE_SHIFT;
    }
    uint8_t *page = gmem_ptr(&d->mem, base, DOMUS_PAGE_SIZE);
    if (!page)
        return GNTST_bad_page;
    if (write && !gref) /* a gref's page is marked by gnttab_map/_unmap */
        gmem_mark_dirty(&d->mem, base, DOMUS_PAGE_SIZE);
    *host = page + p->offset;
    return GNTST_okay;
}

static int op_copy(struct vcpu *v, struct gnttab_copy *c)
{
    uint8_t *src, *dst;
    bool src_mapped, dst_mapped = false;
    c->status = copy_side(v, &c->source, c->flags & GNTCOPY_source_gref, false, c->len,
                          &src, &src_mapped);
    if (c->status == GNTST_okay)
        c->status = copy_side(v, &c->dest, c->flags & GNTCOPY_dest_gref, true, c->len,
                              &dst, &dst_mapped);
    if (c->status == GNTST_okay && c->len)
        memmove(dst, src, c->len);
    if (src_mapped)
        gnttab_unmap(v->d, c->source.u.ref, false);
    if (dst_mapped)
        gnttab_unmap(v->d, c->dest.u.ref, true);
    return 0;
}

typedef int (*gnt_fn)(struct vcpu *v, void *arg);

static const struct {
    gnt_fn fn;
    size_t size;
} gnt_table[] = {
    [GNTTABOP_setup_table] = {(gnt_fn)op_setup_table, sizeof(struct gnttab_setup_table)},
    [GNTTABOP_copy] = {(gnt_fn)op_copy, sizeof(struct gnttab_copy)},
    [GNTTABOP_query_size] = {(gnt_fn)op_query_size, sizeof(struct gnttab_query_size)},
    [GNTTABOP_set_version] = {(gnt_fn)op_set_version, sizeof(struct gnttab_set_version)},
    [GNTTABOP_get_version] = {(gnt_fn)op_get_version, sizeof(struct gnttab_get_version)},
};

#define GNT_MAX_BATCH 512
#define GNT_ARG_MAX 64 /* gnttab_op's buffer: every gnt_table struct fits */
_Static_assert(sizeof(struct gnttab_setup_table) <= GNT_ARG_MAX &&
                   sizeof(struct gnttab_copy) <= GNT_ARG_MAX &&
                   sizeof(struct gnttab_query_size) <= GNT_ARG_MAX &&
                   sizeof(struct gnttab_set_version) <= GNT_ARG_MAX &&
                   sizeof(struct gnttab_get_version) <= GNT_ARG_MAX,
               "grant table argument structs fit gnttab_op's buffer");

int64_t gnttab_op(struct vcpu *v, unsigned cmd, uint64_t arg, unsigned count)
{
    uint8_t buf[GNT_ARG_MAX];
    if (cmd >= ARRAY_SIZE(gnt_table) || !gnt_table[cmd].fn)
        return -ENOSYS;
    if (count > GNT_MAX_BATCH)
        return -EINVAL;
    size_t size = gnt_table[cmd].size;
    for (unsigned i = 0; i < count; i++, arg += size) {
        if (guest_copy_from(v, buf, arg, size) < 0)
            return -EFAULT;
        int rc = gnt_table[cmd].fn(v, buf);
        if (guest_copy_to(v, arg, buf, size) < 0)
            return -EFAULT;
        if (rc < 0)
            return rc;
    }
    return 0;
}
