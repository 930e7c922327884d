/* memdirty MIB RATE: dirties memory at a set rate and checks it kept what
 * it was given (tests/scenarios/76-migrate-net.sh: a guest that keeps
 * writing while it is live-migrated).  Maps MIB MiB, writes every page, then
 * goes round the pages for ever, RATE MiB a second (paced every 10 ms on
 * CLOCK_MONOTONIC), each page rewritten with its index and its next
 * generation at its first and last words, after checking that it still
 * holds the last ones: a page lost or stale after a migration shows.
 * Prints "DIRTY mib=M rate=R pass=P pages=N bad=B" every 5 s and, for the
 * first few wrong pages, "FAIL memdirty: page I holds ... want ...".
 * Exit 2 on bad usage or when it cannot map; otherwise it never ends. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE 4096UL
#define WORDS (PAGE / 8)
#define TICK_NS 10000000LL

static uint64_t *mem;
static size_t npages;
static uint64_t bad;

static int64_t now_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void page_write(size_t i, uint64_t gen)
{
    uint64_t *p = mem + i * WORDS;

    p[0] = i;
    p[1] = gen;
    p[WORDS - 1] = i ^ gen ^ 0x5a5a5a5a5a5a5a5aULL;
}

static void page_check(size_t i, uint64_t gen)
{
    uint64_t *p = mem + i * WORDS;

    if (p[0] == i && p[1] == gen && p[WORDS - 1] == (i ^ gen ^ 0x5a5a5a5a5a5a5a5aULL))
        return;
    if (bad++ < 5)
        printf("FAIL memdirty: page %zu holds %llx/%llx/%llx want %zx/%llx\n", i,
               (unsigned long long)p[0], (unsigned long long)p[1],
               (unsigned long long)p[WORDS - 1], i, (unsigned long long)gen);
}

int main(int argc, char **argv)
{
    unsigned long mib = argc == 3 ? strtoul(argv[1], NULL, 10) : 0;
    unsigned long rate = argc == 3 ? strtoul(argv[2], NULL, 10) : 0;
    uint64_t per_tick, pass = 0, done = 0;
    int64_t next, report;
    size_t i = 0;

    if (!mib || !rate) {
        fprintf(stderr, "usage: memdirty MIB RATE-MIB-PER-S\n");
        return 2;
    }
    npages = (mib << 20) / PAGE;
    mem =
        mmap(NULL, mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        perror("memdirty: mmap");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t k = 0; k < npages; k++)
        page_write(k, 0);
    per_tick = ((uint64_t)rate << 20) / PAGE * TICK_NS / 1000000000LL;
    per_tick = per_tick ? per_tick : 1;
    next = now_ns();
    report = next + 5000000000LL;
    for (;;) {
        for (uint64_t k = 0; k < per_tick; k++) {
            page_check(i, pass);
            page_write(i, pass + 1);
            done++;
            if (++i == npages) {
                i = 0;
                pass++;
            }
        }
        next += TICK_NS;
        int64_t left = next - now_ns();
        if (left > 0) {
            struct timespec t = {.tv_sec = left / 1000000000LL,
                                 .tv_nsec = left % 1000000000LL};
            nanosleep(&t, NULL);
        } else if (left < -1000000000LL) {
            next = now_ns(); /* a second behind (stopped, suspended): no catching up */
        }
        if (now_ns() >= report) {
            printf("DIRTY mib=%lu rate=%lu pass=%llu pages=%llu bad=%llu\n", mib, rate,
                   (unsigned long long)pass, (unsigned long long)done,
                   (unsigned long long)bad);
            report = now_ns() + 5000000000LL;
        }
    }
}
