/* domus block-attach/-detach/-list, network-attach/-detach/-list: hot-plug
 * of disks and vifs on a running domain, as xl's (the work is domusd's,
 * dsd_hotplug.c). */
#include "domus/cli.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* DOM SPEC...: the spec components joined with ',' (as xl takes them). */
static int attach(const char *cmd, int argc, char **argv, bool with_cwd)
{
    json_object *req, *reply;
    char cwd[PATH_MAX], *spec;
    size_t len = 1;
    int rc;

    if (argc < 2 + with_cwd || argv[1][0] == '-')
        return cli_usage_error(cmd);
    for (int i = 2; i < argc; i++)
        len += strlen(argv[i]) + 1;
    spec = calloc(1, len);
    if (!spec)
        return 1;
    for (int i = 2; i < argc; i++) {
        if (i > 2)
            strcat(spec, ",");
        strcat(spec, argv[i]);
    }
    req = cli_dom_req(cmd, argv[1]);
    json_object_object_add(req, "spec", json_object_new_string(spec));
    free(spec);
    if (with_cwd && getcwd(cwd, sizeof(cwd)))
        json_object_object_add(req, "cwd", json_object_new_string(cwd));
    rc = cli_request(req, &reply);
    json_object_put(reply);
    return rc;
}

static int detach(const char *cmd, int argc, char **argv)
{
    json_object *req, *reply;
    int rc;

    if (argc != 3 || argv[1][0] == '-')
        return cli_usage_error(cmd);
    req = cli_dom_req(cmd, argv[1]);
    json_object_object_add(req, "dev", json_object_new_string(argv[2]));
    rc = cli_request(req, &reply);
    if (!rc)
        cli_print_warnings(reply);
    json_object_put(reply);
    return rc;
}

/* The devices of each domain named, one table (header once, as xl). */
static int list(const char *cmd, int argc, char **argv, bool disk)
{
    json_object *reply, *devs;
    int ret = 0;

    if (argc < 2 || argv[1][0] == '-')
        return cli_usage_error(cmd);
    if (disk)
        printf("%-5s %-3s %-6s %-5s %-6s %-8s %-30s\n", "Vdev", "BE", "handle", "state",
               "evt-ch", "ring-ref", "BE-path");
    else
        printf("%-3s %-2s %-17s %-6s %-5s %-6s %5s/%-5s %-30s\n", "Idx", "BE",
               "Mac Addr.", "handle", "state", "evt-ch", "tx-", "rx-ring-ref", "BE-path");
    for (int i = 1; i < argc; i++) {
        if (cli_request(cli_dom_req(cmd, argv[i]), &reply)) {
            ret = 1;
            continue;
        }
        if (!json_object_object_get_ex(reply, "devices", &devs) ||
            !json_object_is_type(devs, json_type_array))
            devs = NULL;
        for (size_t j = 0; devs && j < json_object_array_length(devs); j++) {
            json_object *o = json_object_array_get_idx(devs, j);
            if (disk)
                printf("%-5lld %-3lld %-6lld %-5lld %-6lld %-8lld %-30s\n",
                       cli_jnum(o, "devid"), cli_jnum(o, "be"), cli_jnum(o, "handle"),
                       cli_jnum(o, "state"), cli_jnum(o, "evtch"),
                       cli_jnum(o, "ring_ref"), cli_jstr(o, "be_path"));
            else
                printf("%-3lld %-2lld %-17s %6lld %5lld %6lld %5lld/%-11lld %-30s\n",
                       cli_jnum(o, "devid"), cli_jnum(o, "be"), cli_jstr(o, "mac"),
                       cli_jnum(o, "handle"), cli_jnum(o, "state"), cli_jnum(o, "evtch"),
                       cli_jnum(o, "tx_ring_ref"), cli_jnum(o, "rx_ring_ref"),
                       cli_jstr(o, "be_path"));
        }
        json_object_put(reply);
    }
    return ret;
}

int cli_block_attach(int argc, char **argv)
{
    return attach("block-attach", argc, argv, true);
}

int cli_block_detach(int argc, char **argv)
{
    return detach("block-detach", argc, argv);
}

int cli_block_list(int argc, char **argv)
{
    return list("block-list", argc, argv, true);
}

int cli_network_attach(int argc, char **argv)
{
    return attach("network-attach", argc, argv, false);
}

int cli_network_detach(int argc, char **argv)
{
    return detach("network-detach", argc, argv);
}

int cli_network_list(int argc, char **argv)
{
    return list("network-list", argc, argv, false);
}
