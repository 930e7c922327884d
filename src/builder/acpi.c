/* ACPI tables for a PVH guest (layouts from the ACPI 6.0 specification):
 * RSDP (rev 2) -> RSDT/XSDT -> FADT (rev 6, hardware-reduced, no VGA, no CMOS
 * RTC, sleep and reset registers in I/O space) -> DSDT (\_S5 only), and a
 * MADT with one enabled Local APIC per vCPU and no I/O APIC.  The tables are
 * built in a host buffer and copied to BUILDER_ACPI_GPA with gmem_write. */
#include "domus/builder.h"
#include "domus/util.h"
#include "builder_int.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define ACPI_AREA_SIZE (0x100000ULL - BUILDER_ACPI_GPA)
#define ACPI_OEM_ID "DOMUS "
#define ACPI_OEM_TABLE_ID "DOMUSPVH"
#define ACPI_CREATOR_ID "DOMU"
#define LAPIC_BASE 0xFEE00000u
/* SCI_INT: unused in hardware-reduced mode, but Linux without an I/O APIC
 * still marks it level-triggered in the 8259 ELCR; 9 is the PC convention
 * (0 would make the timer IRQ level-triggered). */
#define ACPI_SCI_IRQ 9

/* FADT flags and IA-PC boot architecture flags. */
#define FADT_F_WBINVD (1u << 0)
#define FADT_F_PWR_BUTTON (1u << 4) /* no fixed-feature power button */
#define FADT_F_SLP_BUTTON (1u << 5) /* no fixed-feature sleep button */
#define FADT_F_RESET_REG_SUP (1u << 10)
#define FADT_F_HW_REDUCED_ACPI (1u << 20)
#define IAPC_VGA_NOT_PRESENT (1u << 2)
#define IAPC_CMOS_RTC_NOT_PRESENT (1u << 5)

#define GAS_SYSTEM_IO 1
#define GAS_ACCESS_BYTE 1
#define MADT_TYPE_LAPIC 0
#define MADT_LAPIC_ENABLED 1u

struct __attribute__((packed)) acpi_rsdp {
    char signature[8];
    uint8_t checksum; /* over the first 20 bytes */
    char oem_id[6];
    uint8_t revision;
    uint32_t rsdt_address;
    uint32_t length;
    uint64_t xsdt_address;
    uint8_t ext_checksum; /* over all 36 bytes */
    uint8_t reserved[3];
};

struct __attribute__((packed)) acpi_header {
    char signature[4];
    uint32_t length;
    uint8_t revision;
    uint8_t checksum;
    char oem_id[6];
    char oem_table_id[8];
    uint32_t oem_revision;
    char creator_id[4];
    uint32_t creator_revision;
};

struct __attribute__((packed)) acpi_gas {
    uint8_t space_id;
    uint8_t bit_width;
    uint8_t bit_offset;
    uint8_t access_size;
    uint64_t address;
};

struct __attribute__((packed)) acpi_fadt {
    struct acpi_header h;
    uint32_t firmware_ctrl, dsdt;
    uint8_t reserved0, preferred_pm_profile;
    uint16_t sci_int;
    uint32_t smi_cmd;
    uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
    uint32_t pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk;
    uint32_t pm2_cnt_blk, pm_tmr_blk, gpe0_blk, gpe1_blk;
    uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len;
    uint8_t gpe0_blk_len, gpe1_blk_len, gpe1_base, cst_cnt;
    uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
    uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
    uint16_t iapc_boot_arch;
    uint8_t reserved1;
    uint32_t flags;
    struct acpi_gas reset_reg;
    uint8_t reset_value;
    uint16_t arm_boot_arch;
    uint8_t minor_version;
    uint64_t x_firmware_ctrl, x_dsdt;
    struct acpi_gas x_pm1a_evt_blk, x_pm1b_evt_blk, x_pm1a_cnt_blk, x_pm1b_cnt_blk;
    struct acpi_gas x_pm2_cnt_blk, x_pm_tmr_blk, x_gpe0_blk, x_gpe1_blk;
    struct acpi_gas sleep_control_reg, sleep_status_reg;
    uint64_t hypervisor_vendor_id;
};

struct __attribute__((packed)) acpi_madt {
    struct acpi_header h;
    uint32_t lapic_address;
    uint32_t flags;
};

struct __attribute__((packed)) acpi_madt_lapic {
    uint8_t type, length, processor_uid, apic_id;
    uint32_t flags;
};

_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP size");
_Static_assert(sizeof(struct acpi_header) == 36, "SDT header size");
_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT (ACPI 6.0) size");
_Static_assert(sizeof(struct acpi_madt) == 44, "MADT size");
_Static_assert(sizeof(struct acpi_madt_lapic) == 8, "MADT LAPIC size");

/* DefinitionBlock body: Name (_S5, Package () { 5, 5, 0, 0 }) */
/* clang-format off */
static const uint8_t dsdt_aml[] = {
    0x08, '_',  'S',  '5', '_',             /* NameOp "_S5_" */
    0x12, 0x08, 0x04,                       /* PackageOp PkgLength=8 NumElements=4 */
    0x0A, ACPI_S5_SLP_TYP,                  /* BytePrefix SLP_TYPa */
    0x0A, ACPI_S5_SLP_TYP,                  /* BytePrefix SLP_TYPb */
    0x00, 0x00,                             /* ZeroOp ZeroOp (reserved) */
};
/* clang-format on */

/* A buffer the tables are laid out in, each 16-byte aligned. */
struct acpi_buf {
    uint8_t *p;
    size_t used;
};

static uint8_t acpi_sum(const void *p, size_t len)
{
    const uint8_t *b = p;
    uint8_t s = 0;
    while (len--)
        s += *b++;
    return s;
}

/* Reserves len bytes; returns the offset from BUILDER_ACPI_GPA. */
static size_t acpi_alloc(struct acpi_buf *b, size_t len)
{
    size_t off = (b->used + 15) & ~(size_t)15;
    b->used = off + len;
    return off;
}

static uint32_t gpa_of(size_t off)
{
    return (uint32_t)(BUILDER_ACPI_GPA + off);
}

static void fill_header(struct acpi_header *h, const char *sig, uint32_t len, uint8_t rev)
{
    memcpy(h->signature, sig, 4);
    h->length = len;
    h->revision = rev;
    memcpy(h->oem_id, ACPI_OEM_ID, 6);
    memcpy(h->oem_table_id, ACPI_OEM_TABLE_ID, 8);
    h->oem_revision = 1;
    memcpy(h->creator_id, ACPI_CREATOR_ID, 4);
    h->creator_revision = 1;
}

/* Sets the checksum of the table at off (length from its header). */
static void seal(struct acpi_buf *b, size_t off)
{
    struct acpi_header h;
    memcpy(&h, b->p + off, sizeof(h));
    b->p[off + offsetof(struct acpi_header, checksum)] =
        (uint8_t)-acpi_sum(b->p + off, h.length);
}

static size_t build_dsdt(struct acpi_buf *b)
{
    uint32_t len = sizeof(struct acpi_header) + sizeof(dsdt_aml);
    size_t off = acpi_alloc(b, len);
    struct acpi_header h = {0};

    fill_header(&h, "DSDT", len, 2);
    memcpy(b->p + off, &h, sizeof(h));
    memcpy(b->p + off + sizeof(h), dsdt_aml, sizeof(dsdt_aml));
    seal(b, off);
    return off;
}

static struct acpi_gas io_reg8(uint16_t port)
{
    return (struct acpi_gas){.space_id = GAS_SYSTEM_IO,
                             .bit_width = 8,
                             .access_size = GAS_ACCESS_BYTE,
                             .address = port};
}

static size_t build_fadt(struct acpi_buf *b, size_t dsdt)
{
    size_t off = acpi_alloc(b, sizeof(struct acpi_fadt));
    struct acpi_fadt f = {0};

    fill_header(&f.h, "FACP", sizeof(f), 6);
    f.sci_int = ACPI_SCI_IRQ;
    f.dsdt = gpa_of(dsdt);
    f.x_dsdt = gpa_of(dsdt);
    f.iapc_boot_arch = IAPC_VGA_NOT_PRESENT | IAPC_CMOS_RTC_NOT_PRESENT;
    f.flags = FADT_F_WBINVD | FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON |
              FADT_F_RESET_REG_SUP | FADT_F_HW_REDUCED_ACPI;
    f.reset_reg = io_reg8(ACPI_RESET_PORT);
    f.reset_value = ACPI_RESET_VALUE;
    f.sleep_control_reg = io_reg8(ACPI_SLEEP_CONTROL_PORT);
    f.sleep_status_reg = io_reg8(ACPI_SLEEP_STATUS_PORT);
    memcpy(b->p + off, &f, sizeof(f));
    seal(b, off);
    return off;
}

static size_t build_madt(struct acpi_buf *b, unsigned vcpus)
{
    uint32_t len = sizeof(struct acpi_madt) + vcpus * sizeof(struct acpi_madt_lapic);
    size_t off = acpi_alloc(b, len);
    struct acpi_madt madt = {.lapic_address = LAPIC_BASE, .flags = 0};

    fill_header(&madt.h, "APIC", len, 4);
    memcpy(b->p + off, &madt, sizeof(madt));
    for (unsigned i = 0; i < vcpus; i++) {
        struct acpi_madt_lapic l = {.type = MADT_TYPE_LAPIC,
                                    .length = sizeof(l),
                                    .processor_uid = (uint8_t)i,
                                    .apic_id = (uint8_t)i,
                                    .flags = MADT_LAPIC_ENABLED};
        memcpy(b->p + off + sizeof(madt) + i * sizeof(l), &l, sizeof(l));
    }
    seal(b, off);
    return off;
}

/* RSDT (32-bit entries) and XSDT (64-bit entries) over the same tables. */
static void build_sdts(struct acpi_buf *b, const size_t *tables, unsigned n, size_t *rsdt,
                       size_t *xsdt)
{
    struct acpi_header h = {0};

    *rsdt = acpi_alloc(b, sizeof(h) + n * 4);
    fill_header(&h, "RSDT", sizeof(h) + n * 4, 1);
    memcpy(b->p + *rsdt, &h, sizeof(h));
    for (unsigned i = 0; i < n; i++) {
        uint32_t a = gpa_of(tables[i]);
        memcpy(b->p + *rsdt + sizeof(h) + i * 4, &a, 4);
    }
    seal(b, *rsdt);

    *xsdt = acpi_alloc(b, sizeof(h) + n * 8);
    fill_header(&h, "XSDT", sizeof(h) + n * 8, 1);
    memcpy(b->p + *xsdt, &h, sizeof(h));
    for (unsigned i = 0; i < n; i++) {
        uint64_t a = gpa_of(tables[i]);
        memcpy(b->p + *xsdt + sizeof(h) + i * 8, &a, 8);
    }
    seal(b, *xsdt);
}

static void build_rsdp(struct acpi_buf *b, size_t off, size_t rsdt, size_t xsdt)
{
    struct acpi_rsdp r = {.revision = 2, .length = sizeof(r)};

    memcpy(r.signature, "RSD PTR ", 8);
    memcpy(r.oem_id, ACPI_OEM_ID, 6);
    r.rsdt_address = gpa_of(rsdt);
    r.xsdt_address = gpa_of(xsdt);
    r.checksum = (uint8_t)-acpi_sum(&r, 20);
    r.ext_checksum = (uint8_t)-acpi_sum(&r, sizeof(r));
    memcpy(b->p + off, &r, sizeof(r));
}

int builder_write_acpi(struct gmem *m, unsigned vcpus, uint64_t *rsdp)
{
    struct acpi_buf b = {0};
    size_t rsdp_off, tables[2], rsdt, xsdt;
    int rc;

    if (vcpus < 1 || vcpus > BUILDER_MAX_VCPUS)
        return -EINVAL;
    b.p = calloc(1, ACPI_AREA_SIZE);
    if (!b.p)
        return -ENOMEM;
    rsdp_off = acpi_alloc(&b, sizeof(struct acpi_rsdp));
    tables[0] = build_fadt(&b, build_dsdt(&b));
    tables[1] = build_madt(&b, vcpus);
    build_sdts(&b, tables, ARRAY_SIZE(tables), &rsdt, &xsdt);
    build_rsdp(&b, rsdp_off, rsdt, xsdt);
    /* 128 vCPUs need under 2 KiB: the area (128 KiB) cannot overflow. */
    rc = b.used <= ACPI_AREA_SIZE ? gmem_write(m, BUILDER_ACPI_GPA, b.p, b.used) : -E2BIG;
    if (rc == 0)
        *rsdp = BUILDER_ACPI_GPA + rsdp_off;
    free(b.p);
    return rc;
}
