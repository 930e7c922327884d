/* iorand: 4 KiB random-read IOPS of a block device or file, one read at a
 * time (queue depth 1), for tests/guest/iobench.sh and bench/io.
 *
 *   iorand [-t SECONDS] [-b BYTES] PATH
 *
 * Reads BYTES (default 4096, a power of two >= 512) with pread at random
 * offsets aligned to BYTES within PATH for SECONDS (default 5), with O_DIRECT
 * when PATH accepts it and buffered reads otherwise (tmpfs on Linux < 6.6
 * refuses O_DIRECT; a note goes to stderr).  Prints one line
 *   iops=N reads=N seconds=S mode=direct|buffered
 * and exits 0, or 1 with a message on stderr.  Built static (no libraries
 * in the guest initramfs) by scripts/setup.sh. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: plenty for picking offsets. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static int usage(void)
{
    fprintf(stderr, "usage: iorand [-t SECONDS] [-b BYTES] PATH\n");
    return 1;
}

int main(int argc, char **argv)
{
    double secs = 5;
    long bs = 4096;
    int c;
    while ((c = getopt(argc, argv, "t:b:")) != -1) {
        switch (c) {
        case 't':
            secs = atof(optarg);
            break;
        case 'b':
            bs = atol(optarg);
            break;
        default:
            return usage();
        }
    }
    if (optind != argc - 1 || !(secs > 0) || bs < 512 || (bs & (bs - 1)))
        return usage();
    const char *path = argv[optind];

    int direct = 1;
    int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (fd < 0 && errno == EINVAL) {
        fprintf(stderr, "iorand: %s refuses O_DIRECT; buffered reads\n", path);
        direct = 0;
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        fprintf(stderr, "iorand: %s: %s\n", path, strerror(errno));
        return 1;
    }
    struct stat st;
    uint64_t size = 0;
    if (fstat(fd, &st) < 0) {
        fprintf(stderr, "iorand: stat %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (S_ISBLK(st.st_mode)) {
        if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
            fprintf(stderr, "iorand: BLKGETSIZE64 %s: %s\n", path, strerror(errno));
            return 1;
        }
    } else {
        size = (uint64_t)st.st_size;
    }
    uint64_t blocks = size / (uint64_t)bs;
    if (blocks == 0) {
        fprintf(stderr, "iorand: %s is smaller than %ld bytes\n", path, bs);
        return 1;
    }
    void *buf;
    if (posix_memalign(&buf, 4096, (size_t)bs) != 0) {
        fprintf(stderr, "iorand: out of memory\n");
        return 1;
    }

    uint64_t seed = 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
    uint64_t n = 0;
    double t0 = now(), t = t0, end = t0 + secs;
    while (t < end) {
        off_t off = (off_t)(rnd(&seed) % blocks) * bs;
        ssize_t r = pread(fd, buf, (size_t)bs, off);
        if (r != bs) {
            fprintf(stderr, "iorand: pread %s at %lld: %s\n", path, (long long)off,
                    r < 0 ? strerror(errno) : "short read");
            return 1;
        }
        n++;
        t = now();
    }
    double d = t - t0;
    printf("iops=%.1f reads=%llu seconds=%.3f mode=%s\n", (double)n / d,
           (unsigned long long)n, d, direct ? "direct" : "buffered");
    free(buf);
    close(fd);
    return 0;
}
