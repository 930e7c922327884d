/* domus subcommands: argument parsing, one request each, output like xl. */
#include "domus/cli.h"
#include "domus/toolstack.h"
#include "domus/util.h"
#include "domus/xlcfg.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WAIT_POLL_US 200000
#define CFG_MAX (1 << 20)

/* getopt over argv (argv[0] is the subcommand) for flags "c" or "w"; returns
 * the flag count seen in *flag, or -1 on a usage error. */
static int one_flag(int argc, char **argv, char flag, bool *seen)
{
    char opts[4] = {'+', flag, 0, 0};
    int o;

    optind = 1;
    opterr = 0;
    *seen = false;
    while ((o = getopt(argc, argv, opts)) != -1) {
        if (o != flag)
            return -1;
        *seen = true;
    }
    return optind;
}

/* ---- create ---- */

static int read_cfg(const char *path, char **text, size_t *len)
{
    FILE *f = fopen(path, "re");
    char *buf;
    size_t n;

    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return 1;
    }
    buf = malloc(CFG_MAX + 1);
    n = buf ? fread(buf, 1, CFG_MAX + 1, f) : 0;
    fclose(f);
    if (!buf || n > CFG_MAX) {
        fprintf(stderr, "%s: %s\n", path, buf ? "file too large" : "out of memory");
        free(buf);
        return 1;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

static int console_of(const char *dom)
{
    json_object *reply;
    int rc = cli_request(cli_dom_req("console-path", dom), &reply);

    if (rc)
        return rc;
    rc = cli_console_attach(cli_jstr(reply, "path"));
    json_object_put(reply);
    return rc;
}

int cli_read_cfg(const char *path, char **text, size_t *len)
{
    return read_cfg(path, text, len);
}

int cli_req_add_cfg(json_object *req, const char *path)
{
    char *text = NULL;
    size_t len;

    if (read_cfg(path, &text, &len))
        return 1;
    json_object_object_add(req, "cfg_path", json_object_new_string(path));
    json_object_object_add(req, "cfg_text", json_object_new_string_len(text, (int)len));
    free(text);
    return 0;
}

int cli_console_of(const char *dom)
{
    return console_of(dom);
}

struct create_opts {
    bool attach, dry_run;
    const char *file;
    int n_vars;
    char **vars; /* KEY=VALUE arguments after the file */
};

static int create_args(int argc, char **argv, struct create_opts *o)
{
    int c;

    memset(o, 0, sizeof(*o));
    optind = 1;
    opterr = 0;
    while ((c = getopt(argc, argv, "+cn")) != -1) {
        if (c == 'c')
            o->attach = true;
        else if (c == 'n')
            o->dry_run = true;
        else
            return -1;
    }
    if (optind >= argc)
        return -1;
    o->file = argv[optind];
    o->vars = argv + optind + 1;
    o->n_vars = argc - optind - 1;
    for (int i = 0; i < o->n_vars; i++) {
        if (!strchr(o->vars[i], '='))
            return -1;
    }
    return 0;
}

/* As xl: KEY=VALUE arguments after the file are appended to its text. */
static int append_vars(char **text, size_t *len, const struct create_opts *o)
{
    size_t total = *len;
    char *t;

    for (int i = 0; i < o->n_vars; i++)
        total += strlen(o->vars[i]) + 2;
    if (total > CFG_MAX) {
        fprintf(stderr, "%s: configuration too large\n", o->file);
        return 1;
    }
    t = realloc(*text, total + 1);
    if (!t)
        return 1;
    for (int i = 0; i < o->n_vars; i++)
        *len += (size_t)sprintf(t + *len, "\n%s\n", o->vars[i]);
    *text = t;
    return 0;
}

static json_object *str_list(const char (*items)[512], unsigned n)
{
    json_object *a = json_object_new_array();
    for (unsigned i = 0; i < n; i++)
        json_object_array_add(a, json_object_new_string(items[i]));
    return a;
}

/* create -n: parse here and print the resulting configuration; no domain. */
static int dry_run(const char *file, const char *text, size_t len)
{
    struct xlcfg *c = malloc(sizeof(*c));
    char err[1024];
    json_object *o;
    int rc = c ? xlcfg_check_text(text, len, file, err, sizeof(err)) : -ENOMEM;

    if (!rc)
        rc = xlcfg_parse_string(text, file, c, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "%s\n", c ? err : "out of memory");
        free(c);
        return 1;
    }
    for (unsigned i = 0; i < c->n_warnings && i < XLCFG_MAX_WARNINGS; i++)
        fprintf(stderr, "warning: %s\n", c->warnings[i]);
    if (c->n_warnings > XLCFG_MAX_WARNINGS)
        fprintf(stderr, "warning: %u more warnings not shown\n",
                c->n_warnings - XLCFG_MAX_WARNINGS);
    o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(c->name));
    json_object_object_add(o, "type", json_object_new_string(c->type));
    json_object_object_add(o, "uuid", json_object_new_string(c->uuid));
    json_object_object_add(o, "kernel", json_object_new_string(c->kernel));
    json_object_object_add(o, "ramdisk", json_object_new_string(c->ramdisk));
    json_object_object_add(o, "cmdline", json_object_new_string(c->cmdline));
    json_object_object_add(o, "memory", json_object_new_int64((int64_t)c->memory_mb));
    json_object_object_add(o, "maxmem", json_object_new_int64((int64_t)c->maxmem_mb));
    json_object_object_add(o, "vcpus", json_object_new_int((int)c->vcpus));
    json_object_object_add(o, "maxvcpus", json_object_new_int((int)c->maxvcpus));
    json_object_object_add(o, "cpu_weight", json_object_new_int((int)c->cpu_weight));
    json_object_object_add(o, "cap", json_object_new_int((int)c->cap));
    json_object_object_add(o, "cpus", json_object_new_string(c->cpus));
    json_object_object_add(o, "cpus_soft", json_object_new_string(c->cpus_soft));
    json_object_object_add(o, "on_poweroff",
                           json_object_new_string(xlcfg_action_name(c->on_poweroff)));
    json_object_object_add(o, "on_reboot",
                           json_object_new_string(xlcfg_action_name(c->on_reboot)));
    json_object_object_add(o, "on_crash",
                           json_object_new_string(xlcfg_action_name(c->on_crash)));
    json_object_object_add(o, "disk", str_list(c->disks, c->n_disks));
    json_object_object_add(o, "vif", str_list(c->vifs, c->n_vifs));
    printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
    json_object_put(o);
    free(c);
    return 0;
}

/* -v: where the create's time went, from the command's start to domusd's
 * answer (domus-vm's instants: vm.h); "started" is on the boot clock
 * (/proc/uptime's), to set the guest's first entry against. */
static const struct cli_phase create_phases[] = {
    {"request", "cli_start", "dsd_req"},   {"domusd", "dsd_req", "dsd_spawn"},
    {"exec", "dsd_spawn", "vm_main"},      {"memory", "vm_main", "vm_mem"},
    {"kernel", "vm_mem", "vm_built"},      {"KVM VM", "vm_built", "vm_kvm"},
    {"back ends", "vm_kvm", "vm_devices"}, {"vCPUs", "vm_devices", "vm_vcpus"},
    {"ready", "vm_vcpus", "dsd_ready"},    {"xenstore", "dsd_ready", "dsd_xs"},
    {"answer", "dsd_xs", "cli_reply"},
};

static uint64_t create_instant(void *ctx, const char *key)
{
    return cli_instant(ctx, key);
}

static void print_create_phases(json_object *reply)
{
    char words[1024];
    struct timespec rt, bt;

    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_BOOTTIME, &bt);
    dfmt(words, sizeof(words), "cli_start=%llu %s cli_reply=%llu",
         (unsigned long long)cli_t0, cli_jstr(reply, "timings"),
         (unsigned long long)drealtime_ns());
    fprintf(stderr, "create: started at %.6f s (boot clock)\n",
            (double)bt.tv_sec + (double)bt.tv_nsec / 1e9 -
                ((double)rt.tv_sec * 1e9 + (double)rt.tv_nsec - (double)cli_t0) / 1e9);
    cli_print_phases(stderr, "create phases", create_phases, ARRAY_SIZE(create_phases),
                     create_instant, words);
}

static int create_request(const struct create_opts *o, const char *text, size_t len)
{
    char cwd[PATH_MAX], name[128];
    json_object *req = json_object_new_object(), *reply;
    int rc;

    json_object_object_add(req, "cmd", json_object_new_string("create"));
    json_object_object_add(req, "path", json_object_new_string(o->file));
    json_object_object_add(req, "text", json_object_new_string_len(text, (int)len));
    if (getcwd(cwd, sizeof(cwd)))
        json_object_object_add(req, "cwd", json_object_new_string(cwd));
    rc = cli_request(req, &reply);
    if (rc)
        return rc;
    snprintf(name, sizeof(name), "%s", cli_jstr(reply, "name"));
    cli_print_warnings(reply);
    if (cli_verbose)
        print_create_phases(reply);
    json_object_put(reply);
    return o->attach ? console_of(name) : 0;
}

int cli_create(int argc, char **argv)
{
    struct create_opts o;
    char *text = NULL;
    size_t len;
    int rc;

    if (create_args(argc, argv, &o) < 0)
        return cli_usage_error("create");
    if (read_cfg(o.file, &text, &len) || append_vars(&text, &len, &o)) {
        free(text);
        return 1;
    }
    fprintf(stderr, "Parsing config from %s\n", o.file);
    rc = o.dry_run ? dry_run(o.file, text, len) : create_request(&o, text, len);
    free(text);
    return rc;
}

/* ---- list ---- */

static bool wanted(json_object *row, int argc, char **argv)
{
    char id[16];

    if (argc == 0)
        return true;
    snprintf(id, sizeof(id), "%lld", cli_jnum(row, "domid"));
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], cli_jstr(row, "name")) || !strcmp(argv[i], id))
            return true;
    }
    return false;
}

static double jdouble(json_object *o, const char *key)
{
    json_object *t;
    return json_object_object_get_ex(o, key, &t) ? json_object_get_double(t) : 0;
}

/* xl list's row; verbose adds UUID, Reason-Code (hex, '-' unless shut
 * down) and Security Label ('-': no XSM). */
static void print_row(json_object *row, bool verbose)
{
    long long reason = cli_jnum(row, "reason");

    printf("%-40s %5d %5lu %5d     %-6.6s  %8.1f", cli_jstr(row, "name"),
           (int)cli_jnum(row, "domid"), (unsigned long)cli_jnum(row, "mem_mib"),
           (int)cli_jnum(row, "vcpus"), cli_jstr(row, "state"), jdouble(row, "cpu_time"));
    if (verbose) {
        printf(" %s", cli_jstr(row, "uuid"));
        if (reason >= 0)
            printf(" %8llx", reason);
        else
            printf(" %8s", "-");
        printf(" %16s", "-");
    }
    putchar('\n');
}

/* Every name asked for must exist, as in xl. */
static int check_wanted(json_object *doms, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        bool found = false;
        for (size_t j = 0; j < json_object_array_length(doms); j++) {
            char *one[1] = {argv[i]};
            found = found || wanted(json_object_array_get_idx(doms, j), 1, one);
        }
        if (!found) {
            fprintf(stderr, "domus: error: domain '%s' does not exist\n", argv[i]);
            return 1;
        }
    }
    return 0;
}

/* xl list -l: the configurations of the domains asked for (Domain-0 has
 * none), as one JSON array. */
static void print_configs(json_object *doms, int argc, char **argv)
{
    json_object *out = json_object_new_array(), *cfg;

    for (size_t i = 0; i < json_object_array_length(doms); i++) {
        json_object *row = json_object_array_get_idx(doms, i);
        if (wanted(row, argc, argv) && json_object_object_get_ex(row, "config", &cfg))
            json_object_array_add(out, json_object_get(cfg));
    }
    printf("%s\n", json_object_to_json_string_ext(
                       out, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(out);
}

/* The domains (Domain-0 first) of a list request, or NULL after a message. */
static json_object *list_domains(bool with_config, json_object **reply)
{
    json_object *req = json_object_new_object(), *doms;

    json_object_object_add(req, "cmd", json_object_new_string("list"));
    if (with_config)
        json_object_object_add(req, "long", json_object_new_boolean(1));
    if (cli_request(req, reply))
        return NULL;
    if (!json_object_object_get_ex(*reply, "domains", &doms) ||
        !json_object_is_type(doms, json_type_array)) {
        fprintf(stderr, "domus: error: malformed reply from domusd\n");
        json_object_put(*reply);
        *reply = NULL;
        return NULL;
    }
    return doms;
}

int cli_list(int argc, char **argv)
{
    json_object *reply, *doms;
    bool verbose = false, details = false;
    int rc, c;

    optind = 1;
    opterr = 0;
    while ((c = getopt(argc, argv, "+lv")) != -1) {
        if (c == 'l')
            details = true;
        else if (c == 'v')
            verbose = true;
        else
            return cli_usage_error("list");
    }
    argc -= optind - 1;
    argv += optind - 1;
    doms = list_domains(details, &reply);
    if (!doms)
        return 1;
    rc = check_wanted(doms, argc - 1, argv + 1);
    if (!rc && details) {
        print_configs(doms, argc - 1, argv + 1);
    } else if (!rc) {
        printf("Name                                        ID   Mem "
               "VCPUs\tState\tTime(s)%s\n",
               verbose ? "   UUID                            Reason-Code\tSecurity Label"
                       : "");
        for (size_t i = 0; i < json_object_array_length(doms); i++) {
            json_object *row = json_object_array_get_idx(doms, i);
            if (wanted(row, argc - 1, argv + 1))
                print_row(row, verbose);
        }
    }
    json_object_put(reply);
    return rc;
}

/* ---- uptime, info ---- */

static void print_uptime(json_object *row, bool short_mode, double now)
{
    double start = jdouble(row, "start_time");
    unsigned long up = now > start && start > 0 ? (unsigned long)(now - start) : 0;
    char s[64], clock[16];
    time_t t = (time_t)now;
    struct tm tm;

    ts_uptime_string(up, short_mode, s, sizeof(s));
    if (!short_mode) {
        printf("%-33s %4d %s\n", cli_jstr(row, "name"), (int)cli_jnum(row, "domid"), s);
        return;
    }
    if (!localtime_r(&t, &tm) || !strftime(clock, sizeof(clock), "%H:%M:%S", &tm))
        clock[0] = '\0';
    printf(" %s up %s, %s (%d)\n", clock, s, cli_jstr(row, "name"),
           (int)cli_jnum(row, "domid"));
}

int cli_uptime(int argc, char **argv)
{
    json_object *reply, *doms;
    bool short_mode;
    int i = one_flag(argc, argv, 's', &short_mode), rc;
    double now;

    if (i < 0)
        return cli_usage_error("uptime");
    doms = list_domains(false, &reply);
    if (!doms)
        return 1;
    rc = check_wanted(doms, argc - i, argv + i);
    now = ts_wall_s();
    if (!rc && !short_mode)
        printf("%-33s %4s %s\n", "Name", "ID", "Uptime");
    for (size_t j = 0; !rc && j < json_object_array_length(doms); j++) {
        json_object *row = json_object_array_get_idx(doms, j);
        if (wanted(row, argc - i, argv + i)) /* as xl: preserved ones too */
            print_uptime(row, short_mode, now);
    }
    json_object_put(reply);
    return rc;
}

int cli_info(int argc, char **argv)
{
    json_object *req, *reply, *info;

    if (argc != 1 || !argv[0])
        return cli_usage_error("info");
    req = json_object_new_object();
    json_object_object_add(req, "cmd", json_object_new_string("info"));
    if (cli_request(req, &reply))
        return 1;
    if (!json_object_object_get_ex(reply, "info", &info) ||
        !json_object_is_type(info, json_type_array)) {
        fprintf(stderr, "domus: error: malformed reply from domusd\n");
        json_object_put(reply);
        return 1;
    }
    for (size_t i = 0; i < json_object_array_length(info); i++) {
        json_object *p = json_object_array_get_idx(info, i);
        printf("%-22s : %s\n", json_object_get_string(json_object_array_get_idx(p, 0)),
               json_object_get_string(json_object_array_get_idx(p, 1)));
    }
    json_object_put(reply);
    return 0;
}

/* ---- per-domain commands ---- */

static int simple(const char *cmd, int argc, char **argv)
{
    json_object *reply;
    int rc;

    if (argc != 2 || argv[1][0] == '-')
        return cli_usage_error(cmd);
    rc = cli_request(cli_dom_req(cmd, argv[1]), &reply);
    json_object_put(reply);
    return rc;
}

int cli_destroy(int argc, char **argv)
{
    return simple("destroy", argc, argv);
}

int cli_pause(int argc, char **argv)
{
    return simple("pause", argc, argv);
}

int cli_unpause(int argc, char **argv)
{
    return simple("unpause", argc, argv);
}

int cli_console(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-')
        return cli_usage_error("console");
    return console_of(argv[1]);
}

/* Domain identity now: domid and generation, or -ENOENT-like when gone. */
static int dom_status(const char *dom, int64_t *domid, int64_t *gen, char *status,
                      size_t len)
{
    json_object *reply;
    int rc;
    int saved = dup(2), null = open("/dev/null", O_WRONLY);

    /* "does not exist" is the answer we wait for, not an error to show. */
    dup2(null, 2);
    rc = cli_request(cli_dom_req("domid", dom), &reply);
    dup2(saved, 2);
    close(saved);
    close(null);
    if (rc)
        return -ENOENT;
    *domid = cli_jnum(reply, "domid");
    *gen = cli_jnum(reply, "gen");
    snprintf(status, len, "%s", cli_jstr(reply, "status"));
    json_object_put(reply);
    return 0;
}

/* xl shutdown/reboot -w: wait until the domain is gone, shut down, or (reboot)
 * running again as a new instance. */
static int wait_for(const char *dom, int64_t domid, int64_t gen0)
{
    /* a restarted instance counts once it runs (or has stopped again) */
    char status[32];
    int64_t id, gen;

    fprintf(stderr, "Waiting for 1 domains\n");
    for (;;) {
        if (dom_status(dom, &id, &gen, status, sizeof(status)) < 0 || id != domid)
            break;
        if (!strcmp(status, "shutdown") || !strcmp(status, "crashed"))
            break;
        if (gen != gen0 && strcmp(status, "building"))
            break;
        usleep(WAIT_POLL_US);
    }
    fprintf(stderr, "Domain %lld has been shut down, reason code 0\n", (long long)domid);
    return 0;
}

static int shutdown_like(const char *cmd, int argc, char **argv)
{
    char status[32];
    json_object *reply;
    int64_t domid = -1, gen = -1;
    bool wait;
    int i = one_flag(argc, argv, 'w', &wait), rc;

    if (i < 0 || i != argc - 1)
        return cli_usage_error(cmd);
    if (wait && dom_status(argv[i], &domid, &gen, status, sizeof(status)) < 0)
        return simple(cmd, 2,
                      (char *[]){(char *)cmd, argv[i], NULL}); /* prints the error */
    rc = cli_request(cli_dom_req(cmd, argv[i]), &reply);
    json_object_put(reply);
    if (rc || !wait)
        return rc;
    return wait_for(argv[i], domid, gen);
}

int cli_shutdown(int argc, char **argv)
{
    return shutdown_like("shutdown", argc, argv);
}

int cli_reboot(int argc, char **argv)
{
    return shutdown_like("reboot", argc, argv);
}

static int lookup(const char *cmd, const char *field, int argc, char **argv)
{
    json_object *reply;
    int rc;

    if (argc != 2 || argv[1][0] == '-')
        return cli_usage_error(cmd);
    rc = cli_request(cli_dom_req("domid", argv[1]), &reply);
    if (rc)
        return rc;
    printf("%s\n", cli_jstr(reply, field));
    json_object_put(reply);
    return 0;
}

int cli_domid(int argc, char **argv)
{
    return lookup("domid", "domid", argc, argv);
}

int cli_domname(int argc, char **argv)
{
    return lookup("domname", "name", argc, argv);
}
