/* domus mem-set / mem-max: a running domain's memory target and maximum,
 * with xl's size syntax. */
#include "domus/cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

long long cli_parse_mem_kb(const char *s)
{
    char *end;
    unsigned long long v;
    unsigned shift;

    if (!s || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || (end[0] && end[1]))
        return -1;
    switch (tolower((unsigned char)*end)) {
    case 'b':
        return (long long)(v >> 10);
    case 'k':
        shift = 0;
        break;
    case '\0': /* MiB, as xl */
    case 'm':
        shift = 10;
        break;
    case 'g':
        shift = 20;
        break;
    case 't':
        shift = 30;
        break;
    default:
        return -1;
    }
    if (v > ((unsigned long long)INT64_MAX >> shift))
        return -1;
    return (long long)(v << shift);
}

static int mem_cmd(const char *cmd, int argc, char **argv)
{
    json_object *req, *reply = NULL;
    long long kib;
    int rc;

    if (argc != 3)
        return cli_usage_error(cmd);
    kib = cli_parse_mem_kb(argv[2]);
    if (kib < 0) {
        fprintf(stderr, "Invalid memory size: %s\n", argv[2]);
        return 1;
    }
    req = cli_dom_req(cmd, argv[1]);
    json_object_object_add(req, "kib", json_object_new_int64(kib));
    rc = cli_request(req, &reply);
    json_object_put(reply);
    return rc ? 1 : 0;
}

int cli_mem_set(int argc, char **argv)
{
    return mem_cmd("mem-set", argc, argv);
}

int cli_mem_max(int argc, char **argv)
{
    return mem_cmd("mem-max", argc, argv);
}
