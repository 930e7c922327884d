/* memtouch MIB: writes every page of MIB MiB of fresh anonymous memory with
 * its own index, reads all of it back, and says so (the balloon scenario:
 * memory given back to the guest is usable).  Exit 0 when every page held
 * what was written, 1 otherwise, 2 on bad usage or when it cannot map. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define PAGE 4096UL

int main(int argc, char **argv)
{
    unsigned long mib = argc == 2 ? strtoul(argv[1], NULL, 10) : 0;
    size_t len = mib << 20, bad = 0;
    uint64_t *p;

    if (!mib) {
        fprintf(stderr, "usage: memtouch MIB\n");
        return 2;
    }
    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("memtouch: mmap");
        return 2;
    }
    for (size_t i = 0; i < len / PAGE; i++)
        p[i * (PAGE / 8)] = i ^ 0x5a5a5a5a5a5a5a5aULL;
    for (size_t i = 0; i < len / PAGE; i++)
        bad += p[i * (PAGE / 8)] != (i ^ 0x5a5a5a5a5a5a5a5aULL);
    printf("memtouch: %lu MiB written and read back, %zu pages wrong\n", mib, bad);
    return bad ? 1 : 0;
}
