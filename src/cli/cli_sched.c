/* domus sched-credit / sched-credit2, vcpu-list, vcpu-pin: output as xl's. */
#include "domus/cli.h"
#include "domus/sched.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A decimal option value within 0..max; -1 when it is not one. */
static long long number_arg(const char *s, long long max)
{
    char *end;
    long long v;

    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    return errno || *end || v > max ? -1 : v;
}

static json_object *rows_of(json_object *reply, const char *key)
{
    json_object *rows;

    if (!json_object_object_get_ex(reply, key, &rows) ||
        !json_object_is_type(rows, json_type_array)) {
        fprintf(stderr, "domus: error: malformed reply from domusd\n");
        return NULL;
    }
    return rows;
}

struct credit_opts {
    const char *dom;
    long long weight, cap; /* -1: not given */
};

static int credit_args(int argc, char **argv, struct credit_opts *o)
{
    static const struct option longs[] = {{"domain", 1, NULL, 'd'},
                                          {"weight", 1, NULL, 'w'},
                                          {"cap", 1, NULL, 'c'},
                                          {NULL, 0, NULL, 0}};
    int c;

    o->dom = NULL;
    o->weight = o->cap = -1;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+d:w:c:", longs, NULL)) != -1) {
        if (c == 'd')
            o->dom = optarg;
        else if (c == 'w' && (o->weight = number_arg(optarg, TS_WEIGHT_MAX)) < 1)
            return -1;
        else if (c == 'c' && (o->cap = number_arg(optarg, TS_CAP_MAX)) < 0)
            return -1;
        else if (c != 'w' && c != 'c')
            return -1;
    }
    if (optind != argc || ((o->weight >= 0 || o->cap >= 0) && !o->dom))
        return -1;
    return 0;
}

static int sched_credit(const char *cmd, int argc, char **argv)
{
    json_object *req = json_object_new_object(), *reply = NULL, *rows;
    struct credit_opts o;
    bool set;

    if (credit_args(argc, argv, &o) < 0) {
        json_object_put(req);
        return cli_usage_error(cmd);
    }
    set = o.weight >= 0 || o.cap >= 0;
    json_object_object_add(req, "cmd", json_object_new_string("sched-credit"));
    if (o.dom)
        json_object_object_add(req, "dom", json_object_new_string(o.dom));
    if (o.weight >= 0)
        json_object_object_add(req, "weight", json_object_new_int64(o.weight));
    if (o.cap >= 0)
        json_object_object_add(req, "cap", json_object_new_int64(o.cap));
    if (cli_request(req, &reply))
        return 1;
    rows = set ? NULL : rows_of(reply, "domains");
    if (rows)
        printf("%-33s %4s %6s %4s\n", "Name", "ID", "Weight", "Cap");
    for (size_t i = 0; rows && i < json_object_array_length(rows); i++) {
        json_object *r = json_object_array_get_idx(rows, i);
        printf("%-33s %4lld %6lld %4lld\n", cli_jstr(r, "name"), cli_jnum(r, "domid"),
               cli_jnum(r, "weight"), cli_jnum(r, "cap"));
    }
    json_object_put(reply);
    return set || rows ? 0 : 1;
}

int cli_sched_credit(int argc, char **argv)
{
    return sched_credit("sched-credit", argc, argv);
}

int cli_sched_credit2(int argc, char **argv)
{
    return sched_credit("sched-credit2", argc, argv);
}

static void print_vcpu(json_object *r)
{
    long long cpu = cli_jnum(r, "cpu");
    json_object *t;
    double time =
        json_object_object_get_ex(r, "time", &t) ? json_object_get_double(t) : 0;

    printf("%-32s %5lld %5lld", cli_jstr(r, "name"), cli_jnum(r, "domid"),
           cli_jnum(r, "vcpu"));
    if (cpu >= 0)
        printf(" %5lld", cpu);
    else
        printf(" %5s", "-");
    printf(" %5s %9.1f  %s / %s\n", cli_jstr(r, "state"), time, cli_jstr(r, "hard"),
           cli_jstr(r, "soft"));
}

int cli_vcpu_list(int argc, char **argv)
{
    json_object *req, *reply = NULL, *rows;

    if (argc > 2 || (argc == 2 && argv[1][0] == '-'))
        return cli_usage_error("vcpu-list");
    req = json_object_new_object();
    json_object_object_add(req, "cmd", json_object_new_string("vcpu-list"));
    if (argc == 2)
        json_object_object_add(req, "dom", json_object_new_string(argv[1]));
    if (cli_request(req, &reply))
        return 1;
    rows = rows_of(reply, "vcpus");
    if (rows)
        printf("%-32s %5s %5s %5s %5s %9s %s\n", "Name", "ID", "VCPU", "CPU", "State",
               "Time(s)", "Affinity (Hard / Soft)");
    for (size_t i = 0; rows && i < json_object_array_length(rows); i++)
        print_vcpu(json_object_array_get_idx(rows, i));
    json_object_put(reply);
    return rows ? 0 : 1;
}

int cli_vcpu_pin(int argc, char **argv)
{
    json_object *req, *reply = NULL;
    int rc;

    if (argc > 1 && (!strcmp(argv[1], "-f") || !strcmp(argv[1], "--force"))) {
        argc--; /* xl's -f (pinning Domain-0's vCPUs) has no meaning here */
        argv++;
    }
    if (argc < 4 || argc > 5 || argv[1][0] == '-')
        return cli_usage_error("vcpu-pin");
    req = cli_dom_req("vcpu-pin", argv[1]);
    json_object_object_add(req, "vcpu", json_object_new_string(argv[2]));
    json_object_object_add(req, "hard", json_object_new_string(argv[3]));
    if (argc == 5)
        json_object_object_add(req, "soft", json_object_new_string(argv[4]));
    rc = cli_request(req, &reply);
    json_object_put(reply);
    return rc;
}
