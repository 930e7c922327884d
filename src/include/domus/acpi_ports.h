/* The ACPI fixed hardware of a Domus guest: I/O ports the builder's ACPI
 * tables (FADT, \_S5) name and the hypervisor core traps.  One header for
 * both, so that src/hv needs nothing of the builder's. */
#ifndef DOMUS_ACPI_PORTS_H
#define DOMUS_ACPI_PORTS_H

#define ACPI_SLEEP_CONTROL_PORT 0x600 /* FADT SLEEP_CONTROL_REG, 8 bit */
#define ACPI_SLEEP_STATUS_PORT 0x601  /* FADT SLEEP_STATUS_REG, 8 bit */
#define ACPI_RESET_PORT 0xCF9         /* FADT RESET_REG, 8 bit */
#define ACPI_RESET_VALUE 0x06
#define ACPI_S5_SLP_TYP 5 /* \_S5 package value: write (5 << 2) | SLP_EN */
#define ACPI_SLP_EN (1 << 5)

#endif
