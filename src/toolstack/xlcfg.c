/* xl.cfg parser (see xlcfg.h).
 *
 * A small hand-written lexer over the whole text (line numbers tracked), one
 * statement at a time: ID '=' VALUE (';' | NEWLINE | EOF).  VALUE is a number,
 * a quoted string or a flat [ list ] of numbers/strings that may span lines.
 * Every value is bounded (XLCFG_TOK_MAX bytes, XLCFG_LIST_MAX items), so hostile
 * input can only produce an error message. */
#include "domus/xlcfg.h"
#include "domus/sched.h"
#include "domus/util.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define XLCFG_TOK_MAX PATH_MAX
#define XLCFG_LIST_MAX 64
#define XLCFG_FILE_MAX (1 << 20)

enum tok {
    T_EOF,
    T_NL,
    T_SEMI,
    T_EQ,
    T_LBR,
    T_RBR,
    T_COMMA,
    T_PLUSEQ,
    T_ID,
    T_NUM,
    T_STR,
    T_ERR,
};

struct lexer {
    const char *p;
    unsigned line;
    const char *fname;
    char *err;
    size_t errlen;
    char tok[XLCFG_TOK_MAX];
    size_t toklen;
};

enum vkind { V_NONE, V_NUM, V_STR, V_LIST };

#define XLCFG_NKEYS 22 /* entries of keys[] */

struct value {
    enum vkind kind;
    unsigned line;
    char *str;    /* V_NUM and V_STR: the token text */
    char **items; /* V_LIST */
    unsigned n_items;
};

/* What the parse collects besides struct xlcfg itself. */
struct pstate {
    struct lexer lx;
    struct xlcfg *cfg;
    bool seen_name, seen_kernel, seen_cmdline, seen_maxmem, seen_maxvcpus, seen_type;
    unsigned mem_line, vcpu_line;
    char root[XLCFG_CMDLINE_MAX];
    char extra[XLCFG_CMDLINE_MAX];
    struct value prev[XLCFG_NKEYS]; /* each key's value so far, for '+=' */
};

static int lex_error(struct lexer *lx, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int lex_error(struct lexer *lx, unsigned line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    dfmt(lx->err, lx->errlen, "%s:%u: %s", lx->fname, line, msg);
    return -EINVAL;
}

/* Records a warning in cfg (line 0: none), counted even past the last slot. */
static void add_warning(struct pstate *ps, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_warning(struct pstate *ps, unsigned line, const char *fmt, ...)
{
    struct xlcfg *cfg = ps->cfg;
    char msg[XLCFG_WARNING_LEN];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (cfg->n_warnings < XLCFG_MAX_WARNINGS) {
        char *w = cfg->warnings[cfg->n_warnings];
        if (line)
            dfmt(w, XLCFG_WARNING_LEN, "%s:%u: %s", ps->lx.fname, line, msg);
        else
            dfmt(w, XLCFG_WARNING_LEN, "%s: %s", ps->lx.fname, msg);
    }
    cfg->n_warnings++;
}

/* ---- lexer ---- */

static int tok_putc(struct lexer *lx, char c)
{
    if (lx->toklen + 1 >= sizeof(lx->tok))
        return lex_error(lx, lx->line, "value too long (more than %d bytes)",
                         XLCFG_TOK_MAX - 1);
    lx->tok[lx->toklen++] = c;
    lx->tok[lx->toklen] = '\0';
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes one escape after a backslash at lx->p; stores the byte in *out. */
static int lex_escape(struct lexer *lx, char *out)
{
    static const char simple_in[] = "ntrabfv\\\"'";
    static const char simple_out[] = "\n\t\r\a\b\f\v\\\"'";
    char c = *lx->p;
    const char *s = c ? strchr(simple_in, c) : NULL;
    unsigned v = 0;
    int n = 0;

    if (s) {
        lx->p++;
        *out = simple_out[s - simple_in];
        return 0;
    }
    if (c == 'x') {
        lx->p++;
        while (n < 2 && hexval(*lx->p) >= 0)
            v = v * 16 + (unsigned)hexval(*lx->p++), n++;
    } else {
        while (n < 3 && *lx->p >= '0' && *lx->p <= '7')
            v = v * 8 + (unsigned)(*lx->p++ - '0'), n++;
    }
    if (n == 0)
        return lex_error(lx, lx->line, "invalid escape sequence '\\%c' in string",
                         c && isprint((unsigned char)c) ? c : '?');
    if (v == 0 || v > 255)
        return lex_error(lx, lx->line, "invalid escape in string (NUL or out of range)");
    *out = (char)v;
    return 0;
}

static enum tok lex_string(struct lexer *lx)
{
    char quote = *lx->p++;
    unsigned start = lx->line;

    for (;;) {
        char c = *lx->p;
        if (c == '\0' || c == '\n') {
            lex_error(lx, start, "unterminated string");
            return T_ERR;
        }
        lx->p++;
        if (c == quote)
            return T_STR;
        if (c == '\\' && lex_escape(lx, &c) < 0)
            return T_ERR;
        if (tok_putc(lx, c) < 0)
            return T_ERR;
    }
}

static enum tok lex_word(struct lexer *lx, bool number)
{
    while (isalnum((unsigned char)*lx->p) || *lx->p == '_' || *lx->p == '.' ||
           (number && *lx->p == '-')) {
        if (tok_putc(lx, *lx->p++) < 0)
            return T_ERR;
    }
    return number ? T_NUM : T_ID;
}

static void lex_skip_blank(struct lexer *lx)
{
    for (;;) {
        char c = *lx->p;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
            lx->p++;
        } else if (c == '#') {
            while (*lx->p && *lx->p != '\n')
                lx->p++;
        } else if (c == '\\' && lx->p[1] == '\n') {
            lx->p += 2; /* line continuation */
            lx->line++;
        } else {
            return;
        }
    }
}

static enum tok lex_next(struct lexer *lx)
{
    static const char punct[] = ";=[],";
    static const enum tok ptok[] = {T_SEMI, T_EQ, T_LBR, T_RBR, T_COMMA};
    const char *s;
    char c;

    lex_skip_blank(lx);
    lx->toklen = 0;
    lx->tok[0] = '\0';
    c = *lx->p;
    if (c == '\0')
        return T_EOF;
    if (c == '\n') {
        lx->p++;
        lx->line++;
        return T_NL;
    }
    s = strchr(punct, c);
    if (s) {
        lx->p++;
        return ptok[s - punct];
    }
    if (c == '+' && lx->p[1] == '=') {
        lx->p += 2;
        return T_PLUSEQ;
    }
    if (c == '"' || c == '\'')
        return lex_string(lx);
    if (isdigit((unsigned char)c) || c == '-' || c == '+')
        return lex_word(lx, true);
    if (isalpha((unsigned char)c) || c == '_')
        return lex_word(lx, false);
    lex_error(lx, lx->line, "syntax error: unexpected character '%c'",
              isprint((unsigned char)c) ? c : '?');
    return T_ERR;
}

/* ---- values ---- */

static void value_free(struct value *v)
{
    free(v->str);
    for (unsigned i = 0; i < v->n_items; i++)
        free(v->items[i]);
    free(v->items);
    memset(v, 0, sizeof(*v));
}

static int list_add(struct lexer *lx, struct value *v)
{
    if (v->n_items >= XLCFG_LIST_MAX)
        return lex_error(lx, lx->line, "list has too many items (at most %d)",
                         XLCFG_LIST_MAX);
    if (!v->items) {
        v->items = calloc(XLCFG_LIST_MAX, sizeof(*v->items));
        if (!v->items)
            return -ENOMEM;
    }
    v->items[v->n_items] = strdup(lx->tok);
    if (!v->items[v->n_items])
        return -ENOMEM;
    v->n_items++;
    return 0;
}

/* After '[': items separated by ',', newlines allowed, optional trailing ','. */
static int parse_list(struct lexer *lx, struct value *v)
{
    bool want_item = true;
    enum tok t;
    int rc;

    v->kind = V_LIST;
    for (;;) {
        t = lex_next(lx);
        if (t == T_NL)
            continue;
        if (t == T_ERR)
            return -EINVAL;
        if (t == T_RBR)
            return 0;
        if (t == T_EOF)
            return lex_error(lx, v->line, "unterminated list (missing ']')");
        if (t == T_LBR)
            return lex_error(lx, lx->line, "nested lists are not supported");
        if ((t == T_STR || t == T_NUM) && want_item) {
            rc = list_add(lx, v);
            if (rc)
                return rc;
            want_item = false;
        } else if (t == T_COMMA && !want_item) {
            want_item = true;
        } else {
            return lex_error(lx, lx->line, "syntax error in list");
        }
    }
}

static int parse_value(struct lexer *lx, struct value *v)
{
    enum tok t = lex_next(lx);

    v->line = lx->line;
    if (t == T_ERR)
        return -EINVAL;
    if (t == T_LBR)
        return parse_list(lx, v);
    if (t == T_STR || t == T_NUM) {
        v->kind = t == T_STR ? V_STR : V_NUM;
        v->str = strdup(lx->tok);
        return v->str ? 0 : -ENOMEM;
    }
    return lex_error(lx, v->line, "syntax error: expected a value after '='");
}

/* ---- typed accessors ---- */

static int want_string(struct pstate *ps, const char *key, const struct value *v,
                       char *dst, size_t len)
{
    if (v->kind == V_LIST)
        return lex_error(&ps->lx, v->line, "%s: expected a string, got a list", key);
    if (strlen(v->str) >= len)
        return lex_error(&ps->lx, v->line, "%s: value too long (at most %zu bytes)", key,
                         len - 1);
    strcpy(dst, v->str);
    return 0;
}

static int want_number(struct pstate *ps, const char *key, const struct value *v,
                       uint64_t *out)
{
    char *end;

    if (v->kind == V_LIST)
        return lex_error(&ps->lx, v->line, "%s: expected a number, got a list", key);
    if (!isdigit((unsigned char)v->str[0]))
        goto bad;
    errno = 0;
    *out = strtoull(v->str, &end, 0);
    if (errno == ERANGE)
        return lex_error(&ps->lx, v->line, "%s: number '%s' is out of range", key,
                         v->str);
    if (*end == '\0')
        return 0;
bad:
    return lex_error(&ps->lx, v->line, "%s: expected a number, got '%.40s'", key, v->str);
}

static int want_list(struct pstate *ps, const char *key, const struct value *v,
                     char (*dst)[512], unsigned max, unsigned *n)
{
    if (v->kind != V_LIST)
        return lex_error(&ps->lx, v->line, "%s: expected a [ list ]", key);
    if (v->n_items > max)
        return lex_error(&ps->lx, v->line, "%s: too many entries (at most %u)", key, max);
    for (unsigned i = 0; i < v->n_items; i++) {
        if (strlen(v->items[i]) >= 512)
            return lex_error(&ps->lx, v->line, "%s: entry %u too long", key, i + 1);
        strcpy(dst[i], v->items[i]);
    }
    *n = v->n_items;
    return 0;
}

/* ---- keys ---- */

static bool valid_name(const char *s)
{
    bool all_digits = true;

    if (!*s)
        return false;
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-')
            return false;
        if (!isdigit((unsigned char)*s))
            all_digits = false;
    }
    return !all_digits;
}

static int key_name(struct pstate *ps, const char *k, const struct value *v)
{
    int rc = want_string(ps, k, v, ps->cfg->name, sizeof(ps->cfg->name));
    if (rc)
        return rc;
    if (!valid_name(ps->cfg->name))
        return lex_error(&ps->lx, v->line,
                         "name '%s' is not valid (letters, digits, '_', '.', '-'; "
                         "not only digits)",
                         ps->cfg->name);
    ps->seen_name = true;
    return 0;
}

/* Domus has no PV mode: a PV config boots as PVH, which Debian's kernels
 * (and any Linux with CONFIG_PVH) support. */
static void pv_as_pvh(struct pstate *ps, const char *what, unsigned line)
{
    add_warning(ps, line,
                "%s: Domus has no PV mode; booting as PVH (the kernel must support PVH)",
                what);
    strcpy(ps->cfg->type, "pvh");
}

static int key_type(struct pstate *ps, const char *k, const struct value *v)
{
    char t[64];
    int rc = want_string(ps, k, v, t, sizeof(t));
    if (rc)
        return rc;
    ps->seen_type = true;
    if (!strcmp(t, "hvm"))
        return lex_error(&ps->lx, v->line, "type '%s' is not supported yet", t);
    if (!strcmp(t, "pv")) {
        pv_as_pvh(ps, "type 'pv'", v->line);
        return 0;
    }
    if (strcmp(t, "pvh"))
        return lex_error(&ps->lx, v->line, "type '%s' is not valid (pvh, hvm or pv)", t);
    strcpy(ps->cfg->type, t);
    return 0;
}

/* xl's deprecated spelling of type: "generic" (PV) or "hvm"; type wins. */
static int key_builder(struct pstate *ps, const char *k, const struct value *v)
{
    char t[64];
    int rc = want_string(ps, k, v, t, sizeof(t));
    if (rc)
        return rc;
    if (!strcmp(t, "hvm"))
        return lex_error(&ps->lx, v->line, "builder '%s' is not supported yet", t);
    if (strcmp(t, "generic"))
        return lex_error(&ps->lx, v->line,
                         "builder '%.40s' is not valid (generic or hvm)", t);
    if (!ps->seen_type)
        pv_as_pvh(ps, "builder 'generic'", v->line);
    ps->seen_type = true;
    return 0;
}

static int key_kernel(struct pstate *ps, const char *k, const struct value *v)
{
    int rc = want_string(ps, k, v, ps->cfg->kernel, sizeof(ps->cfg->kernel));
    if (rc)
        return rc;
    if (!ps->cfg->kernel[0])
        return lex_error(&ps->lx, v->line, "kernel: empty path");
    ps->seen_kernel = true;
    return 0;
}

static int key_ramdisk(struct pstate *ps, const char *k, const struct value *v)
{
    return want_string(ps, k, v, ps->cfg->ramdisk, sizeof(ps->cfg->ramdisk));
}

static int key_cmdline(struct pstate *ps, const char *k, const struct value *v)
{
    ps->seen_cmdline = true;
    return want_string(ps, k, v, ps->cfg->cmdline, sizeof(ps->cfg->cmdline));
}

static int key_root(struct pstate *ps, const char *k, const struct value *v)
{
    return want_string(ps, k, v, ps->root, sizeof(ps->root));
}

static int key_extra(struct pstate *ps, const char *k, const struct value *v)
{
    return want_string(ps, k, v, ps->extra, sizeof(ps->extra));
}

static int key_memory(struct pstate *ps, const char *k, const struct value *v)
{
    ps->mem_line = v->line;
    return want_number(ps, k, v, &ps->cfg->memory_mb);
}

static int key_maxmem(struct pstate *ps, const char *k, const struct value *v)
{
    ps->seen_maxmem = true;
    return want_number(ps, k, v, &ps->cfg->maxmem_mb);
}

static int want_vcpus(struct pstate *ps, const char *k, const struct value *v,
                      unsigned *out)
{
    uint64_t n;
    int rc = want_number(ps, k, v, &n);
    if (rc)
        return rc;
    if (n == 0 || n > XLCFG_MAX_VCPUS)
        return lex_error(&ps->lx, v->line, "%s: %llu is out of range (1..%d)", k,
                         (unsigned long long)n, XLCFG_MAX_VCPUS);
    *out = (unsigned)n;
    return 0;
}

static int key_vcpus(struct pstate *ps, const char *k, const struct value *v)
{
    ps->vcpu_line = v->line;
    return want_vcpus(ps, k, v, &ps->cfg->vcpus);
}

static int key_maxvcpus(struct pstate *ps, const char *k, const struct value *v)
{
    ps->seen_maxvcpus = true;
    return want_vcpus(ps, k, v, &ps->cfg->maxvcpus);
}

static int want_action(struct pstate *ps, const char *k, const struct value *v,
                       enum xlcfg_action *out)
{
    static const char *const unsupported[] = {"rename-restart", "coredump-destroy",
                                              "coredump-restart", "soft-reset"};
    char a[64];
    int rc = want_string(ps, k, v, a, sizeof(a));
    if (rc)
        return rc;
    for (int i = XLCFG_ACTION_DESTROY; i <= XLCFG_ACTION_PRESERVE; i++) {
        if (!strcmp(a, xlcfg_action_name((enum xlcfg_action)i))) {
            *out = (enum xlcfg_action)i;
            return 0;
        }
    }
    for (size_t i = 0; i < ARRAY_SIZE(unsupported); i++) {
        if (!strcmp(a, unsupported[i]))
            return lex_error(&ps->lx, v->line, "%s: action '%s' is not supported", k, a);
    }
    return lex_error(&ps->lx, v->line,
                     "%s: invalid action '%.40s' (destroy, restart or preserve)", k, a);
}

static int key_on_poweroff(struct pstate *ps, const char *k, const struct value *v)
{
    return want_action(ps, k, v, &ps->cfg->on_poweroff);
}

static int key_on_reboot(struct pstate *ps, const char *k, const struct value *v)
{
    return want_action(ps, k, v, &ps->cfg->on_reboot);
}

static int key_on_crash(struct pstate *ps, const char *k, const struct value *v)
{
    return want_action(ps, k, v, &ps->cfg->on_crash);
}

static int key_disk(struct pstate *ps, const char *k, const struct value *v)
{
    return want_list(ps, k, v, ps->cfg->disks, XLCFG_MAX_DISKS, &ps->cfg->n_disks);
}

static int key_vif(struct pstate *ps, const char *k, const struct value *v)
{
    return want_list(ps, k, v, ps->cfg->vifs, XLCFG_MAX_VIFS, &ps->cfg->n_vifs);
}

static bool valid_uuid(const char *s)
{
    if (strlen(s) != XLCFG_UUID_LEN)
        return false;
    for (int i = 0; i < XLCFG_UUID_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

static int key_uuid(struct pstate *ps, const char *k, const struct value *v)
{
    char u[64];
    int rc = want_string(ps, k, v, u, sizeof(u));
    if (rc)
        return rc;
    if (!valid_uuid(u))
        return lex_error(&ps->lx, v->line, "uuid: '%.40s' is not a valid UUID", u);
    for (int i = 0; u[i]; i++)
        ps->cfg->uuid[i] = (char)tolower((unsigned char)u[i]);
    ps->cfg->uuid[XLCFG_UUID_LEN] = '\0';
    return 0;
}

static int key_weight(struct pstate *ps, const char *k, const struct value *v)
{
    char err[128];
    uint64_t n;
    int rc = want_number(ps, k, v, &n);

    if (!rc && ts_sched_check(n, 0, err, sizeof(err)) < 0)
        return lex_error(&ps->lx, v->line, "cpu_weight: %s", err);
    ps->cfg->cpu_weight = (unsigned)n;
    return rc;
}

static int key_cap(struct pstate *ps, const char *k, const struct value *v)
{
    char err[128];
    uint64_t n;
    int rc = want_number(ps, k, v, &n);

    if (!rc && ts_sched_check(TS_WEIGHT_DEFAULT, n, err, sizeof(err)) < 0)
        return lex_error(&ps->lx, v->line, "cap: %s", err);
    ps->cfg->cap = (unsigned)n;
    return rc;
}

/* cpus= / cpus_soft=: one cpu list for every vCPU (the syntax is checked
 * here, the CPUs against the host by domusd). */
static int want_cpulist(struct pstate *ps, const char *k, const struct value *v,
                        char *dst, size_t len)
{
    char err[128];
    cpu_set_t set;

    if (v->kind == V_LIST)
        return lex_error(&ps->lx, v->line,
                         "%s: per-vCPU lists are not supported; give one string "
                         "for all vCPUs (\"0-3,5\")",
                         k);
    int rc = want_string(ps, k, v, dst, len);
    if (!rc && ts_cpulist_parse(dst, CPU_SETSIZE, &set, err, sizeof(err)) < 0)
        return lex_error(&ps->lx, v->line, "%s: %s", k, err);
    return rc;
}

static int key_cpus(struct pstate *ps, const char *k, const struct value *v)
{
    return want_cpulist(ps, k, v, ps->cfg->cpus, sizeof(ps->cfg->cpus));
}

static int key_soft(struct pstate *ps, const char *k, const struct value *v)
{
    return want_cpulist(ps, k, v, ps->cfg->cpus_soft, sizeof(ps->cfg->cpus_soft));
}

struct key_handler {
    const char *key;
    int (*fn)(struct pstate *ps, const char *key, const struct value *v);
};

static const struct key_handler keys[] = {
    {"name", key_name},           {"type", key_type},
    {"kernel", key_kernel},       {"ramdisk", key_ramdisk},
    {"cmdline", key_cmdline},     {"root", key_root},
    {"extra", key_extra},         {"memory", key_memory},
    {"maxmem", key_maxmem},       {"vcpus", key_vcpus},
    {"maxvcpus", key_maxvcpus},   {"on_poweroff", key_on_poweroff},
    {"on_reboot", key_on_reboot}, {"on_crash", key_on_crash},
    {"disk", key_disk},           {"vif", key_vif},
    {"uuid", key_uuid},           {"builder", key_builder},
    {"cpu_weight", key_weight},   {"cap", key_cap},
    {"cpus", key_cpus},           {"cpus_soft", key_soft},
};

_Static_assert(ARRAY_SIZE(keys) == XLCFG_NKEYS, "XLCFG_NKEYS");

static int find_key(const char *key)
{
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        if (!strcmp(keys[i].key, key))
            return (int)i;
    }
    return -1;
}

/* xl.cfg keys that give the guest something Domus cannot give yet: ignoring
 * them would silently change the guest, so they are errors while set. */
static const char *const unsupported_keys[] = {
    "pci",     "dtdev",     "iomem",   "ioports", "irqs",       "usb",         "usbctrl",
    "usbdev",  "usbdevice", "vfb",     "vkb",     "vtpm",       "vdispl",      "vsnd",
    "channel", "p9",        "pvcalls", "vuart",   "bootloader", "device_tree", "cpuid",
    "vnuma",   "nestedhvm", "altp2m",  "rdm",
};

/* False for an empty list or string and for the number 0: "nothing asked". */
static bool value_set(const struct value *v)
{
    char *end;

    if (v->kind == V_LIST)
        return v->n_items > 0;
    if (v->kind == V_STR)
        return v->str[0] != '\0';
    return strtoull(v->str, &end, 0) != 0 || *end != '\0';
}

/* A key Domus does not use: an error when it is in unsupported_keys and set,
 * else a warning naming it. */
static int ignored_key(struct pstate *ps, const char *key, unsigned line,
                       const struct value *v)
{
    for (size_t i = 0; i < ARRAY_SIZE(unsupported_keys); i++) {
        if (strcmp(key, unsupported_keys[i]))
            continue;
        if (!value_set(v))
            break;
        if (!strcmp(key, "bootloader"))
            return lex_error(&ps->lx, line,
                             "bootloader is not supported: give kernel (and ramdisk)");
        return lex_error(&ps->lx, line,
                         "%s is not supported yet (without it the guest would lack what "
                         "it asks for)",
                         key);
    }
    add_warning(ps, line, "ignoring key '%.64s' (not used by Domus for a PVH domain)",
                key);
    return 0;
}

/* xl's '+=': strings are concatenated, lists extended; on a key not set
 * before it is a plain assignment.  *v becomes the combined value. */
static int append_value(struct pstate *ps, const char *key, const struct value *old,
                        struct value *v)
{
    if (old->kind == V_NONE)
        return 0;
    if ((old->kind == V_LIST) != (v->kind == V_LIST))
        return lex_error(&ps->lx, v->line, "%s: '+=' mixes a list and a single value",
                         key);
    if (v->kind == V_LIST) {
        if (old->n_items + v->n_items > XLCFG_LIST_MAX)
            return lex_error(&ps->lx, v->line, "list has too many items (at most %d)",
                             XLCFG_LIST_MAX);
        if (!v->items && !(v->items = calloc(XLCFG_LIST_MAX, sizeof(*v->items))))
            return -ENOMEM;
        memmove(v->items + old->n_items, v->items, v->n_items * sizeof(*v->items));
        for (unsigned i = 0; i < old->n_items; i++) {
            if (!(v->items[i] = strdup(old->items[i]))) {
                v->n_items = i; /* only what is allocated gets freed */
                return -ENOMEM;
            }
        }
        v->n_items += old->n_items;
        return 0;
    }
    size_t a = strlen(old->str), b = strlen(v->str);
    char *cat;
    if (a + b >= XLCFG_TOK_MAX)
        return lex_error(&ps->lx, v->line, "value too long (more than %d bytes)",
                         XLCFG_TOK_MAX - 1);
    if (!(cat = malloc(a + b + 1)))
        return -ENOMEM;
    memcpy(cat, old->str, a);
    memcpy(cat + a, v->str, b + 1);
    free(v->str);
    v->str = cat;
    v->kind = V_STR;
    return 0;
}

/* Applies KEY = VALUE (or KEY += VALUE); keeps the value for later '+='. */
static int apply_key(struct pstate *ps, const char *key, unsigned line, bool append,
                     struct value *v)
{
    int k = find_key(key), rc;

    if (k < 0)
        return ignored_key(ps, key, line, v);
    if (append && (rc = append_value(ps, key, &ps->prev[k], v)) < 0)
        return rc;
    rc = keys[k].fn(ps, key, v);
    if (rc)
        return rc;
    value_free(&ps->prev[k]);
    ps->prev[k] = *v; /* moved: the caller's copy is cleared */
    memset(v, 0, sizeof(*v));
    return 0;
}

/* ---- statements ---- */

/* Parses one statement after its identifier token (in lx->tok). */
static int parse_statement(struct pstate *ps)
{
    struct lexer *lx = &ps->lx;
    char key[64];
    unsigned line = lx->line;
    struct value v = {0};
    enum tok t;
    bool append;
    int rc;

    if (lx->toklen >= sizeof(key))
        return lex_error(lx, line, "key '%.40s...' is too long", lx->tok);
    strcpy(key, lx->tok);
    t = lex_next(lx);
    if (t != T_EQ && t != T_PLUSEQ)
        return lex_error(lx, line, "syntax error: expected '=' after '%s'", key);
    append = t == T_PLUSEQ;
    rc = parse_value(lx, &v);
    if (rc)
        goto out;
    t = lex_next(lx);
    if (t == T_ERR) {
        rc = -EINVAL;
        goto out;
    }
    if (t != T_SEMI && t != T_NL && t != T_EOF) {
        rc = lex_error(lx, lx->line,
                       "syntax error: unexpected text after the value of '%s'", key);
        goto out;
    }
    rc = apply_key(ps, key, line, append, &v);
out:
    value_free(&v);
    return rc;
}

static void cfg_defaults(struct xlcfg *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    strcpy(cfg->type, "pvh");
    cfg->memory_mb = 128;
    cfg->cpu_weight = TS_WEIGHT_DEFAULT;
    cfg->vcpus = 1;
    cfg->on_poweroff = XLCFG_ACTION_DESTROY;
    cfg->on_reboot = XLCFG_ACTION_RESTART;
    cfg->on_crash = XLCFG_ACTION_DESTROY;
}

/* xl: without cmdline, the command line is "root=<root> <extra>". */
static int build_cmdline(struct pstate *ps)
{
    struct xlcfg *cfg = ps->cfg;
    int n;

    if (ps->seen_cmdline)
        return 0;
    if (ps->root[0] && ps->extra[0])
        n = snprintf(cfg->cmdline, sizeof(cfg->cmdline), "root=%s %s", ps->root,
                     ps->extra);
    else if (ps->root[0])
        n = snprintf(cfg->cmdline, sizeof(cfg->cmdline), "root=%s", ps->root);
    else
        n = snprintf(cfg->cmdline, sizeof(cfg->cmdline), "%s", ps->extra);
    if (n < 0 || (size_t)n >= sizeof(cfg->cmdline))
        return lex_error(&ps->lx, ps->lx.line, "root and extra: command line too long");
    return 0;
}

static int check_required(struct pstate *ps)
{
    struct xlcfg *cfg = ps->cfg;
    unsigned last = ps->lx.line;

    if (!ps->seen_name)
        return lex_error(&ps->lx, last, "missing required key 'name'");
    if (!ps->seen_kernel)
        return lex_error(&ps->lx, last, "missing required key 'kernel'");
    if (!ps->seen_type)
        add_warning(ps, 0,
                    "no 'type' given: booting as PVH (xl would default to PV, "
                    "which Domus does not have)");
    if (cfg->memory_mb < XLCFG_MEMORY_MIN_MB || cfg->memory_mb > XLCFG_MEMORY_MAX_MB)
        return lex_error(&ps->lx, ps->mem_line ? ps->mem_line : last,
                         "memory: %llu MiB is out of range (%d..%llu)",
                         (unsigned long long)cfg->memory_mb, XLCFG_MEMORY_MIN_MB,
                         (unsigned long long)XLCFG_MEMORY_MAX_MB);
    if (!ps->seen_maxmem)
        cfg->maxmem_mb = cfg->memory_mb;
    if (cfg->maxmem_mb < cfg->memory_mb || cfg->maxmem_mb > XLCFG_MEMORY_MAX_MB)
        return lex_error(
            &ps->lx, last, "maxmem: %llu MiB must be between memory (%llu) and %llu",
            (unsigned long long)cfg->maxmem_mb, (unsigned long long)cfg->memory_mb,
            (unsigned long long)XLCFG_MEMORY_MAX_MB);
    if (!ps->seen_maxvcpus)
        cfg->maxvcpus = cfg->vcpus;
    if (cfg->maxvcpus < cfg->vcpus)
        return lex_error(&ps->lx, ps->vcpu_line ? ps->vcpu_line : last,
                         "vcpus: %u is more than maxvcpus (%u)", cfg->vcpus,
                         cfg->maxvcpus);
    return build_cmdline(ps);
}

static int parse_all(struct pstate *ps)
{
    for (;;) {
        enum tok t = lex_next(&ps->lx);
        int rc;

        if (t == T_EOF)
            return check_required(ps);
        if (t == T_NL || t == T_SEMI)
            continue;
        if (t == T_ERR)
            return -EINVAL;
        if (t != T_ID)
            return lex_error(&ps->lx, ps->lx.line,
                             "syntax error: expected 'KEY = VALUE'");
        rc = parse_statement(ps);
        if (rc)
            return rc;
    }
}

int xlcfg_parse_string(const char *text, const char *fname, struct xlcfg *cfg, char *err,
                       size_t errlen)
{
    struct pstate *ps;
    int rc;

    if (!text || !cfg)
        return -EINVAL;
    ps = calloc(1, sizeof(*ps));
    if (!ps) {
        dfmt(err, errlen, "%s: out of memory", fname ? fname : "config");
        return -ENOMEM;
    }
    ps->lx.p = text;
    ps->lx.line = 1;
    ps->lx.fname = fname ? fname : "config";
    ps->lx.err = err;
    ps->lx.errlen = errlen;
    ps->cfg = cfg;
    cfg_defaults(cfg);
    rc = parse_all(ps);
    if (rc == -ENOMEM)
        dfmt(err, errlen, "%s: out of memory", ps->lx.fname);
    for (size_t i = 0; i < ARRAY_SIZE(ps->prev); i++)
        value_free(&ps->prev[i]);
    free(ps);
    return rc;
}

/* Reads at most XLCFG_FILE_MAX bytes of path into a NUL-terminated buffer. */
static int read_text(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t n = 0;
    ssize_t r;
    int fd, rc;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        dfmt(err, errlen, "%s: %s", path, strerror(errno));
        return rc;
    }
    buf = malloc(XLCFG_FILE_MAX + 1);
    if (!buf) {
        rc = -ENOMEM;
        dfmt(err, errlen, "%s: out of memory", path);
        goto out;
    }
    while ((r = read(fd, buf + n, XLCFG_FILE_MAX + 1 - n)) > 0 && n <= XLCFG_FILE_MAX)
        n += (size_t)r;
    if (r < 0 || n > XLCFG_FILE_MAX) {
        rc = r < 0 ? -errno : -EFBIG;
        dfmt(err, errlen, "%s: %s", path, r < 0 ? strerror(errno) : "file too large");
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}

int xlcfg_check_text(const char *text, size_t len, const char *fname, char *err,
                     size_t errlen)
{
    const char *nul = memchr(text, '\0', len);
    unsigned line = 1;

    if (!nul)
        return 0;
    for (const char *p = text; p < nul; p++)
        line += *p == '\n';
    dfmt(err, errlen, "%s:%u: NUL byte in configuration", fname, line);
    return -EINVAL;
}

int xlcfg_parse_file(const char *path, struct xlcfg *cfg, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc;

    rc = read_text(path, &text, &len, err, errlen);
    if (rc)
        return rc;
    rc = xlcfg_check_text(text, len, path, err, errlen);
    if (!rc)
        rc = xlcfg_parse_string(text, path, cfg, err, errlen);
    free(text);
    return rc;
}

const char *xlcfg_action_name(enum xlcfg_action a)
{
    switch (a) {
    case XLCFG_ACTION_DESTROY:
        return "destroy";
    case XLCFG_ACTION_RESTART:
        return "restart";
    case XLCFG_ACTION_PRESERVE:
        return "preserve";
    }
    return "?";
}

int xlcfg_uuid_generate(char out[XLCFG_UUID_LEN + 1])
{
    uint8_t b[16];
    size_t n = 0;

    while (n < sizeof(b)) {
        ssize_t r = getrandom(b + n, sizeof(b) - n, 0);
        if (r < 0 && errno != EINTR)
            return -errno;
        n += r > 0 ? (size_t)r : 0;
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, XLCFG_UUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
    return 0;
}
