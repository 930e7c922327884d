/* domus vcpu-set: as xl's ("[option] <Domain> <vCPUs>", -i/--ignore-host). */
#include "domus/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_vcpu_set(int argc, char **argv)
{
    static const struct option longs[] = {{"ignore-host", 0, NULL, 'i'},
                                          {NULL, 0, NULL, 0}};
    json_object *req, *reply = NULL;
    bool ignore_host = false;
    unsigned long long n;
    char *end;
    int c, rc;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+i", longs, NULL)) != -1) {
        if (c != 'i')
            return cli_usage_error("vcpu-set");
        ignore_host = true;
    }
    if (argc - optind != 2)
        return cli_usage_error("vcpu-set");
    errno = 0;
    n = strtoull(argv[optind + 1], &end, 10);
    if (end == argv[optind + 1] || *end || errno || n > 0x7fffffff ||
        argv[optind + 1][0] == '-') {
        fprintf(stderr, "Error: Invalid argument.\n");
        return 1;
    }
    req = cli_dom_req("vcpu-set", argv[optind]);
    json_object_object_add(req, "vcpus", json_object_new_int64((int64_t)n));
    json_object_object_add(req, "ignore_host", json_object_new_boolean(ignore_host));
    rc = cli_request(req, &reply);
    json_object_put(reply);
    return rc;
}
