/* domusd: scheduling of domains (sched.h): a cgroup v2 group per domain for
 * the credit weight and cap, the vCPU threads' affinity, sched-credit,
 * vcpu-list and vcpu-pin.
 *
 * domus-vm names its vCPU threads "vcpu<N>" (kvm.c) before it says "ready";
 * they are found by that name in /proc/<pid>/task. */
#include "domus/domusd.h"
#include "domus/vmctl.h"
#include "domus/sched.h"
#include "domus/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

static unsigned host_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_CONF);

    return n < 1 ? 1 : n > CPU_SETSIZE ? CPU_SETSIZE : (unsigned)n;
}

static int write_file(const char *dir, const char *name, const char *val)
{
    char path[PATH_MAX];
    int fd, rc = 0;

    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
        return -ENAMETOOLONG;
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (write(fd, val, strlen(val)) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

/* ---- cgroups ---- */

/* Enables the cpu controller (required) and cpuset (if it can) below dir. */
static int enable_controllers(const char *dir, char *why, size_t len)
{
    int rc = write_file(dir, "cgroup.subtree_control", "+cpu");

    if (rc) {
        dfmt(why, len, "%s/cgroup.subtree_control: +cpu: %s", dir, strerror(-rc));
        return rc;
    }
    if (write_file(dir, "cgroup.subtree_control", "+cpuset") < 0)
        dinfo("cgroups: %s: the cpuset controller is not available", dir);
    return 0;
}

static int cgroup_find(struct dsd *d, char *why, size_t len)
{
    const char *root = getenv("DOMUS_CGROUP_ROOT"), *off = getenv("DOMUS_CGROUP");
    struct statfs sf;
    int rc;

    root = root && *root ? root : "/sys/fs/cgroup";
    if (off && !strcmp(off, "0")) {
        dfmt(why, len, "turned off (DOMUS_CGROUP=0)");
        return -EPERM;
    }
    if (statfs(root, &sf) < 0 || sf.f_type != CGROUP2_SUPER_MAGIC) {
        dfmt(why, len, "%s is not a cgroup v2 mount", root);
        return -ENOTSUP;
    }
    if ((size_t)snprintf(d->cg_dir, sizeof(d->cg_dir), "%s/domus", root) >=
        sizeof(d->cg_dir))
        return -ENAMETOOLONG;
    rc = enable_controllers(root, why, len);
    if (rc)
        return rc;
    if (mkdir(d->cg_dir, 0755) < 0 && errno != EEXIST) {
        rc = -errno;
        dfmt(why, len, "cannot create %s: %s", d->cg_dir, strerror(errno));
        return rc;
    }
    return enable_controllers(d->cg_dir, why, len);
}

void dsd_cgroup_init(struct dsd *d)
{
    d->cg_ok = cgroup_find(d, d->cg_why, sizeof(d->cg_why)) == 0;
    if (d->cg_ok)
        dinfo("cgroups: each domain gets a group under %s", d->cg_dir);
    else
        dwarn("cgroups: %s: domains run without a cgroup; cpu_weight and cap other "
              "than 256 and 0 are refused",
              d->cg_why);
}

static int group_dir(const struct dsd *d, const struct dsd_dom *dom, char *buf,
                     size_t len)
{
    int n = snprintf(buf, len, "%s/dom%u", d->cg_dir, dom->domid);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int write_sched(const char *dir, unsigned weight, unsigned cap, char *err,
                       size_t errlen)
{
    char val[48];
    int rc;

    snprintf(val, sizeof(val), "%u", ts_sched_cg_weight(weight));
    rc = write_file(dir, "cpu.weight", val);
    if (!rc) {
        ts_sched_cpu_max(cap, val, sizeof(val));
        rc = write_file(dir, "cpu.max", val);
    }
    if (rc)
        dfmt(err, errlen, "%s: cannot set cpu.weight and cpu.max: %s", dir,
             strerror(-rc));
    return rc;
}

static int no_cgroup(const struct dsd *d, char *err, size_t errlen)
{
    dfmt(err, errlen,
         "cpu_weight and cap need a cgroup v2 group, which domusd cannot use: %s",
         d->cg_why);
    return -EOPNOTSUPP;
}

static void busy_drop(struct dsd *d, unsigned i)
{
    d->n_cg_busy--;
    d->cg_busy[i] = d->cg_busy[d->n_cg_busy];
    d->cg_busy_until[i] = d->cg_busy_until[d->n_cg_busy];
}

static int cgroup_setup(struct dsd *d, struct dsd_dom *dom, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    int rc;

    if (!d->cg_ok)
        return dom->cfg.cpu_weight != TS_WEIGHT_DEFAULT || dom->cfg.cap
                   ? no_cgroup(d, err, errlen)
                   : 0;
    for (unsigned i = 0; i < d->n_cg_busy;) {
        if (d->cg_busy[i] == dom->domid)
            busy_drop(d, i); /* the group is this domain's now */
        else
            i++;
    }
    rc = group_dir(d, dom, dir, sizeof(dir));
    if (!rc && mkdir(dir, 0755) < 0 && errno != EEXIST)
        rc = -errno;
    if (rc) {
        dfmt(err, errlen, "cannot create cgroup %s: %s", dir, strerror(-rc));
        return rc;
    }
    return write_sched(dir, dom->cfg.cpu_weight, dom->cfg.cap, err, errlen);
}

int dsd_cgroup_procs_fd(const struct dsd *d, const struct dsd_dom *dom)
{
    char dir[PATH_MAX], path[PATH_MAX + 16];

    if (!d->cg_ok || group_dir(d, dom, dir, sizeof(dir)) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    return open(path, O_WRONLY | O_CLOEXEC);
}

void dsd_cgroup_join(const struct dsd *d, const struct dsd_dom *dom, pid_t pid)
{
    char dir[PATH_MAX], val[24];
    int rc;

    if (!d->cg_ok || group_dir(d, dom, dir, sizeof(dir)) < 0)
        return;
    snprintf(val, sizeof(val), "%d", (int)pid);
    rc = write_file(dir, "cgroup.procs", val);
    if (rc)
        dwarn("domain %u: cannot move pid %d into %s: %s", dom->domid, (int)pid, dir,
              strerror(-rc));
}

static int group_rmdir(const struct dsd *d, unsigned domid)
{
    char dir[PATH_MAX];

    if ((size_t)snprintf(dir, sizeof(dir), "%s/dom%u", d->cg_dir, domid) >= sizeof(dir))
        return -ENAMETOOLONG;
    return rmdir(dir) < 0 && errno != ENOENT ? -errno : 0;
}

void dsd_cgroup_remove(struct dsd *d, const struct dsd_dom *dom)
{
    int rc;

    if (!d->cg_ok)
        return;
    rc = group_rmdir(d, dom->domid);
    if (rc == -EBUSY && d->n_cg_busy < DSD_CG_BUSY_MAX) {
        d->cg_busy[d->n_cg_busy] = dom->domid;
        d->cg_busy_until[d->n_cg_busy++] = dnow_ms() + DSD_CG_BUSY_MS;
    } else if (rc) {
        dwarn("domain %u: cannot remove %s/dom%u: %s", dom->domid, d->cg_dir, dom->domid,
              strerror(-rc));
    }
}

void dsd_cgroup_tick(struct dsd *d)
{
    int64_t now = dnow_ms();

    for (unsigned i = 0; i < d->n_cg_busy;) {
        int rc = group_rmdir(d, d->cg_busy[i]);
        if (rc == -EBUSY && now < d->cg_busy_until[i]) {
            i++;
            continue;
        }
        if (rc)
            dwarn("cgroups: cannot remove %s/dom%u: %s", d->cg_dir, d->cg_busy[i],
                  strerror(-rc));
        busy_drop(d, i);
    }
}

int dsd_cgroup_timeout_ms(const struct dsd *d)
{
    return d->n_cg_busy ? DSD_CG_RETRY_MS : -1;
}

/* ---- affinity ---- */

static int init_affinity(struct dsd_dom *dom, char *err, size_t errlen)
{
    unsigned nr = host_cpus();
    char e[160];
    cpu_set_t hard, soft;

    CPU_ZERO(&hard);
    for (unsigned c = 0; c < nr; c++)
        CPU_SET(c, &hard);
    soft = hard;
    if (dom->cfg.cpus[0] &&
        ts_cpulist_parse(dom->cfg.cpus, nr, &hard, e, sizeof(e)) < 0) {
        dfmt(err, errlen, "cpus: %s", e);
        return -EINVAL;
    }
    if (dom->cfg.cpus_soft[0] &&
        ts_cpulist_parse(dom->cfg.cpus_soft, nr, &soft, e, sizeof(e)) < 0) {
        dfmt(err, errlen, "cpus_soft: %s", e);
        return -EINVAL;
    }
    for (unsigned i = 0; i < XLCFG_MAX_VCPUS; i++) {
        dom->hard[i] = hard;
        dom->soft[i] = soft;
    }
    return 0;
}

/* tids[i] = the thread "vcpu<i>" of pid (0: not found), i < n; the count found. */
static unsigned vcpu_threads(pid_t pid, pid_t *tids, unsigned n)
{
    char path[64], comm[32];
    struct dirent *e;
    unsigned found = 0, id;
    DIR *dir;

    memset(tids, 0, n * sizeof(*tids));
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    dir = opendir(path);
    while (dir && (e = readdir(dir))) {
        int tid = atoi(e->d_name), fd;
        ssize_t len;
        snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)pid, tid);
        if (tid <= 0 || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
            continue;
        len = read(fd, comm, sizeof(comm) - 1);
        close(fd);
        comm[len > 0 ? len : 0] = '\0';
        if (sscanf(comm, "vcpu%u", &id) == 1 && id < n && !tids[id]) {
            tids[id] = tid;
            found++;
        }
    }
    if (dir)
        closedir(dir);
    return found;
}

void dsd_sched_apply_affinity(struct dsd_dom *dom)
{
    pid_t tids[XLCFG_MAX_VCPUS];
    unsigned n = dom->cfg.maxvcpus, found;

    if (!dom->pid)
        return;
    found = vcpu_threads(dom->pid, tids, n);
    for (unsigned i = 0; i < n; i++) {
        if (tids[i] && sched_setaffinity(tids[i], sizeof(cpu_set_t), &dom->hard[i]) < 0)
            dwarn("domain %u: vcpu%u: sched_setaffinity: %s", dom->domid, i,
                  strerror(errno));
    }
    if (found < n)
        dwarn("domain %u: found %u of its %u vCPU threads to pin", dom->domid, found, n);
}

/* ---- the state file ---- */

json_object *dsd_sched_save(const struct dsd_dom *dom)
{
    json_object *o = json_object_new_object(), *aff = json_object_new_array();
    unsigned nr = host_cpus();
    char h[TS_CPULIST_MAX], s[TS_CPULIST_MAX];

    json_object_object_add(o, "weight", json_object_new_int((int)dom->cfg.cpu_weight));
    json_object_object_add(o, "cap", json_object_new_int((int)dom->cfg.cap));
    for (unsigned i = 0; i < dom->cfg.maxvcpus && i < XLCFG_MAX_VCPUS; i++) {
        json_object *pair = json_object_new_array();
        ts_cpulist_format(&dom->hard[i], nr, h, sizeof(h));
        ts_cpulist_format(&dom->soft[i], nr, s, sizeof(s));
        json_object_array_add(pair, json_object_new_string(h));
        json_object_array_add(pair, json_object_new_string(s));
        json_object_array_add(aff, pair);
    }
    json_object_object_add(o, "affinity", aff);
    json_object_object_add(o, "online", json_object_new_int((int)dom->vcpus_online));
    return o;
}

static int jint(json_object *o, const char *key, long long *out)
{
    json_object *v;

    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
        return -ENOENT;
    *out = (long long)json_object_get_int64(v);
    return 0;
}

/* What the state file says replaces the config's values; bad parts are skipped. */
static void sched_restore(struct dsd_dom *dom, json_object *o)
{
    long long w = dom->cfg.cpu_weight, c = dom->cfg.cap;
    unsigned nr = host_cpus();
    json_object *aff, *pair;
    long long online = dom->vcpus_online;
    cpu_set_t h, s;
    char err[160];

    jint(o, "weight", &w);
    jint(o, "cap", &c);
    if (jint(o, "online", &online) == 0 && online >= 1 && online <= dom->cfg.maxvcpus)
        dom->vcpus_online = (unsigned)online;
    if (w >= 0 && c >= 0 &&
        ts_sched_check((unsigned long long)w, (unsigned long long)c, err, sizeof(err)) ==
            0) {
        dom->cfg.cpu_weight = (unsigned)w;
        dom->cfg.cap = (unsigned)c;
    }
    if (!json_object_object_get_ex(o, "affinity", &aff) ||
        !json_object_is_type(aff, json_type_array))
        return;
    for (size_t i = 0; i < json_object_array_length(aff) && i < XLCFG_MAX_VCPUS; i++) {
        pair = json_object_array_get_idx(aff, i);
        if (!json_object_is_type(pair, json_type_array) ||
            json_object_array_length(pair) != 2 ||
            ts_cpulist_parse(json_object_get_string(json_object_array_get_idx(pair, 0)),
                             nr, &h, err, sizeof(err)) < 0 ||
            ts_cpulist_parse(json_object_get_string(json_object_array_get_idx(pair, 1)),
                             nr, &s, err, sizeof(err)) < 0)
            continue;
        dom->hard[i] = h;
        dom->soft[i] = s;
    }
}

int dsd_sched_prepare(struct dsd *d, struct dsd_dom *dom, json_object *saved, char *err,
                      size_t errlen)
{
    int rc = init_affinity(dom, err, errlen);

    if (!rc && saved)
        sched_restore(dom, saved);
    if (!rc)
        rc = cgroup_setup(d, dom, err, errlen);
    return rc;
}

/* ---- requests ---- */

static bool is_dom0(const char *spec)
{
    return spec && (!strcmp(spec, "0") || !strcmp(spec, "Domain-0"));
}

/* The domain named by "dom" (NULL after an error reply); Domain-0 refused. */
static struct dsd_dom *find_dom(struct dsd *d, uint64_t client, const char *spec)
{
    struct dsd_dom *dom;

    if (!spec) {
        dsd_reply_error(d, client, "\"dom\" (a domain name or id string) is missing");
        return NULL;
    }
    if (is_dom0(spec)) {
        dsd_reply_error(d, client,
                        "Domain-0 is the host: its CPUs are Linux's to schedule");
        return NULL;
    }
    dom = dsd_dom_find(d, spec);
    if (!dom)
        dsd_reply_error(d, client, "domain '%.64s' does not exist", spec);
    return dom;
}

static int by_domid(const void *a, const void *b)
{
    const struct dsd_dom *x = *(struct dsd_dom *const *)a,
                         *y = *(struct dsd_dom *const *)b;
    return (x->domid > y->domid) - (x->domid < y->domid);
}

/* The domains to show: the one named spec, or all sorted by domid (NULL
 * spec); *n of them in a malloc'd array, NULL after an error reply. */
static struct dsd_dom **select_doms(struct dsd *d, uint64_t client, const char *spec,
                                    size_t *n)
{
    struct dsd_dom **v;
    size_t k = 0;

    for (struct dsd_dom *x = d->doms; x; x = x->next)
        k++;
    v = calloc(k + 1, sizeof(*v));
    if (!v) {
        dsd_reply_error(d, client, "out of memory");
        return NULL;
    }
    *n = 0;
    for (struct dsd_dom *x = d->doms; x; x = x->next) {
        if (!spec || x == dsd_dom_find(d, spec))
            v[(*n)++] = x;
    }
    if (spec && !*n && !is_dom0(spec)) {
        dsd_reply_error(d, client, "domain '%.64s' does not exist", spec);
        free(v);
        return NULL;
    }
    qsort(v, *n, sizeof(*v), by_domid);
    return v;
}

static json_object *credit_row(const char *name, unsigned domid, unsigned w, unsigned c)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "name", json_object_new_string(name));
    json_object_object_add(o, "domid", json_object_new_int((int)domid));
    json_object_object_add(o, "weight", json_object_new_int((int)w));
    json_object_object_add(o, "cap", json_object_new_int((int)c));
    return o;
}

/* The weight and cap a sched-credit request asks for (the others kept). */
static int credit_values(const struct dsd *d, const struct dsd_dom *dom, json_object *obj,
                         long long *w, long long *c, char *err, size_t errlen)
{
    *w = dom->cfg.cpu_weight;
    *c = dom->cfg.cap;
    if ((json_object_object_get_ex(obj, "weight", NULL) && jint(obj, "weight", w) < 0) ||
        (json_object_object_get_ex(obj, "cap", NULL) && jint(obj, "cap", c) < 0)) {
        dfmt(err, errlen, "weight and cap must be integers");
        return -EINVAL;
    }
    if (*w < 0 || *c < 0) {
        dfmt(err, errlen, "weight and cap cannot be negative");
        return -EINVAL;
    }
    if (ts_sched_check((unsigned long long)*w, (unsigned long long)*c, err, errlen) < 0)
        return -EINVAL;
    return d->cg_ok ? 0 : no_cgroup(d, err, errlen);
}

static void set_credit(struct dsd *d, uint64_t client, json_object *obj)
{
    struct dsd_dom *dom = find_dom(d, client, vmctl_get_str(obj, "dom"));
    char err[PATH_MAX + 160], dir[PATH_MAX];
    long long w, c;
    int rc;

    if (!dom)
        return;
    rc = credit_values(d, dom, obj, &w, &c, err, sizeof(err));
    if (!rc && (rc = group_dir(d, dom, dir, sizeof(dir))) < 0)
        dfmt(err, sizeof(err), "cgroup path too long");
    if (!rc)
        rc = write_sched(dir, (unsigned)w, (unsigned)c, err, sizeof(err));
    if (rc) {
        dsd_reply_error(d, client, "%s: %s", dom->cfg.name, err);
        return;
    }
    dom->cfg.cpu_weight = (unsigned)w;
    dom->cfg.cap = (unsigned)c;
    dsd_persist_save(dom);
    dinfo("domain %u (%s): weight %u, cap %u", dom->domid, dom->cfg.name,
          dom->cfg.cpu_weight, dom->cfg.cap);
    dsd_reply(d, client, dsd_ok());
}

static void sched_credit(struct dsd *d, uint64_t client, json_object *obj)
{
    const char *spec = vmctl_get_str(obj, "dom");
    json_object *o, *rows;
    struct dsd_dom **v;
    size_t n;

    if (json_object_object_get_ex(obj, "weight", NULL) ||
        json_object_object_get_ex(obj, "cap", NULL)) {
        set_credit(d, client, obj);
        return;
    }
    v = select_doms(d, client, spec, &n);
    if (!v)
        return;
    rows = json_object_new_array();
    if (!spec || is_dom0(spec))
        json_object_array_add(rows, credit_row("Domain-0", 0, TS_WEIGHT_DEFAULT, 0));
    for (size_t i = 0; i < n; i++)
        json_object_array_add(rows, credit_row(v[i]->cfg.name, v[i]->domid,
                                               v[i]->cfg.cpu_weight, v[i]->cfg.cap));
    o = dsd_ok();
    json_object_object_add(o, "domains", rows);
    dsd_reply(d, client, o);
    free(v);
}

/* One vcpu-list row of thread tid, vCPU i of dom. */
static json_object *vcpu_row(const struct dsd_dom *dom, unsigned i, pid_t tid,
                             bool paused, unsigned nr)
{
    char path[64], buf[1024], h[TS_CPULIST_MAX], s[TS_CPULIST_MAX], state[4];
    struct ts_taskstat st = {.state = '?', .cpu = -1};
    json_object *o;
    cpu_set_t hard;
    ssize_t len;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)dom->pid, (int)tid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    len = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
    if (fd >= 0)
        close(fd);
    buf[len > 0 ? len : 0] = '\0';
    if (len <= 0 || ts_parse_taskstat(buf, &st) < 0)
        return NULL;
    if (sched_getaffinity(tid, sizeof(hard), &hard) < 0)
        hard = dom->hard[i];
    ts_cpulist_format(&hard, nr, h, sizeof(h));
    ts_cpulist_format(&dom->soft[i], nr, s, sizeof(s));
    /* xl: an offline vCPU is "--p" with no CPU ("-"). */
    if (i >= dom->vcpus_online)
        snprintf(state, sizeof(state), "--p");
    else
        snprintf(state, sizeof(state), "%c%c%c", st.state == 'R' ? 'r' : '-',
                 st.state == 'R' ? '-' : 'b', paused ? 'p' : '-');
    o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(dom->cfg.name));
    json_object_object_add(o, "domid", json_object_new_int((int)dom->domid));
    json_object_object_add(o, "vcpu", json_object_new_int((int)i));
    json_object_object_add(o, "cpu",
                           json_object_new_int(i < dom->vcpus_online ? st.cpu : -1));
    json_object_object_add(o, "online", json_object_new_boolean(i < dom->vcpus_online));
    json_object_object_add(o, "state", json_object_new_string(state));
    json_object_object_add(
        o, "time",
        json_object_new_double((double)st.cpu_ticks / (double)sysconf(_SC_CLK_TCK)));
    json_object_object_add(o, "tid", json_object_new_int((int)tid));
    json_object_object_add(o, "hard", json_object_new_string(h));
    json_object_object_add(o, "soft", json_object_new_string(s));
    return o;
}

/* Is the domain paused?  Asks its domus-vm (vmctl.h "info": "state"). */
static bool dom_paused(const struct dsd_dom *dom)
{
    json_object *reply, *v;
    char err[256];
    bool paused;

    if (dsd_vm_control(dom, vmctl_req("info"), &reply, err, sizeof(err)) < 0)
        return false;
    paused = json_object_object_get_ex(reply, "state", &v) &&
             json_object_is_type(v, json_type_string) &&
             json_object_get_string(v)[0] == 'p';
    json_object_put(reply);
    return paused;
}

static void vcpu_list(struct dsd *d, uint64_t client, json_object *obj)
{
    pid_t tids[XLCFG_MAX_VCPUS];
    unsigned nr = host_cpus();
    json_object *o, *rows;
    struct dsd_dom **v;
    size_t n;

    v = select_doms(d, client, vmctl_get_str(obj, "dom"), &n);
    if (!v)
        return;
    rows = json_object_new_array();
    for (size_t k = 0; k < n; k++) {
        struct dsd_dom *dom = v[k];
        bool paused;
        if (dom->state != DS_RUNNING || !dom->pid)
            continue;
        paused = dom_paused(dom);
        vcpu_threads(dom->pid, tids, dom->cfg.maxvcpus);
        for (unsigned i = 0; i < dom->cfg.maxvcpus; i++) {
            json_object *row = tids[i] ? vcpu_row(dom, i, tids[i], paused, nr) : NULL;
            if (row)
                json_object_array_add(rows, row);
        }
    }
    o = dsd_ok();
    json_object_object_add(o, "vcpus", rows);
    dsd_reply(d, client, o);
    free(v);
}

/* "-" (keep) or a cpu list into *set; *changed says which. */
static int pin_arg(const char *s, unsigned nr, cpu_set_t *set, bool *changed, char *err,
                   size_t errlen)
{
    *changed = s && strcmp(s, "-");
    return *changed ? ts_cpulist_parse(s, nr, set, err, errlen) : 0;
}

/* Sets vCPUs [lo, hi)'s thread affinity to hard; all or none. */
static int pin_threads(struct dsd_dom *dom, unsigned lo, unsigned hi,
                       const cpu_set_t *hard, char *err, size_t errlen)
{
    pid_t tids[XLCFG_MAX_VCPUS];
    unsigned i;

    if (dom->state != DS_RUNNING || !dom->pid)
        return 0; /* applied when it runs */
    vcpu_threads(dom->pid, tids, dom->cfg.maxvcpus);
    for (i = lo; i < hi && i < dom->cfg.maxvcpus; i++) {
        if (tids[i] && sched_setaffinity(tids[i], sizeof(*hard), hard) < 0) {
            int rc = -errno;
            dfmt(err, errlen, "vcpu%u: sched_setaffinity: %s", i, strerror(errno));
            while (i-- > lo)
                if (tids[i])
                    sched_setaffinity(tids[i], sizeof(cpu_set_t), &dom->hard[i]);
            return rc;
        }
    }
    return 0;
}

static int pin_range(const struct dsd_dom *dom, const char *vcpu, unsigned *lo,
                     unsigned *hi, char *err, size_t errlen)
{
    char *end;
    unsigned long v;

    if (vcpu && !strcmp(vcpu, "all")) {
        *lo = 0;
        *hi = dom->cfg.maxvcpus;
        return 0;
    }
    errno = 0;
    v = vcpu && *vcpu >= '0' && *vcpu <= '9' ? strtoul(vcpu, &end, 10) : ULONG_MAX;
    if (v == ULONG_MAX || errno || *end || v >= dom->cfg.maxvcpus) {
        dfmt(err, errlen, "vcpu '%.20s' is not 'all' nor one of 0..%u", vcpu ? vcpu : "",
             dom->cfg.maxvcpus - 1);
        return -EINVAL;
    }
    *lo = (unsigned)v;
    *hi = *lo + 1;
    return 0;
}

static void vcpu_pin(struct dsd *d, uint64_t client, json_object *obj)
{
    struct dsd_dom *dom = find_dom(d, client, vmctl_get_str(obj, "dom"));
    char err[256], e[200];
    unsigned nr = host_cpus(), lo = 0, hi = 0;
    cpu_set_t hard, soft;
    bool set_hard, set_soft;
    int rc;

    if (!dom)
        return;
    rc = pin_range(dom, vmctl_get_str(obj, "vcpu"), &lo, &hi, err, sizeof(err));
    if (!rc && (rc = pin_arg(vmctl_get_str(obj, "hard"), nr, &hard, &set_hard, e,
                             sizeof(e))) < 0)
        dfmt(err, sizeof(err), "hard affinity: %s", e);
    if (!rc && (rc = pin_arg(vmctl_get_str(obj, "soft"), nr, &soft, &set_soft, e,
                             sizeof(e))) < 0)
        dfmt(err, sizeof(err), "soft affinity: %s", e);
    if (!rc && set_hard)
        rc = pin_threads(dom, lo, hi, &hard, err, sizeof(err));
    if (rc) {
        dsd_reply_error(d, client, "%s: %s", dom->cfg.name, err);
        return;
    }
    for (unsigned i = lo; i < hi; i++) {
        if (set_hard)
            dom->hard[i] = hard;
        if (set_soft)
            dom->soft[i] = soft;
    }
    dsd_persist_save(dom);
    dsd_reply(d, client, dsd_ok());
}

void dsd_sched_request(struct dsd *d, uint64_t client, const char *cmd, json_object *obj)
{
    if (!strcmp(cmd, "sched-credit"))
        sched_credit(d, client, obj);
    else if (!strcmp(cmd, "vcpu-list"))
        vcpu_list(d, client, obj);
    else
        vcpu_pin(d, client, obj);
}
