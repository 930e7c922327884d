/* Unit tests of the domain process's library (vm.h, vmctl.h, vcpugate.h):
 * its arguments, device table, init levels, control commands and transport.
 * No KVM: devices are a fake kind. */
#include "domus/kvm.h"
#include "domus/util.h"
#include "domus/vm.h"
#include "domus/vmctl.h"
#include "domus/vmlazy.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static struct vm vm; /* large */

/* ---- arguments ---- */

static int parse(struct vm_args *a, const char *const *extra)
{
    static char buf[48][256];
    char *argv[64];
    int n = 0;
    const char *base[] = {"domus-vm", "--name", "g",       "--kernel", "/k",
                          "--memory", "64",     "--vcpus", "2",        NULL};
    for (const char *const *p = base; *p; p++)
        argv[n++] = (char *)*p;
    for (int i = 0; extra && extra[i]; i++) {
        snprintf(buf[i], sizeof(buf[i]), "%s", extra[i]);
        argv[n++] = buf[i];
    }
    argv[n] = NULL;
    return vm_parse_args(n, argv, a);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_args(void)
{
    struct vm_args a;

    CHECK("args: minimal", parse(&a, NULL) == 0 && a.vcpus == 2 && a.memory_mb == 64 &&
                               a.ready_fd == -1 && !a.n_devs);
    CHECK("args: disk and vif in order, path with colons",
          parse(&a, ARGS("--xenstore", "--xenstore-path", "/s", "--disk", "51728:w:/a:b",
                         "--vif", "0,00:16:3e:00:00:01,xenbr0,9000", "--disk",
                         "51744:r:/c")) == 0 &&
              a.n_devs == 3 && a.devs[0].kind == &vm_kind_vbd &&
              a.devs[0].devid == 51728 && a.devs[0].cfg.vbd.readwrite &&
              !strcmp(a.devs[0].cfg.vbd.path, "/a:b") && a.devs[1].kind == &vm_kind_vif &&
              a.devs[1].cfg.vif.mtu == 9000 && a.devs[1].cfg.vif.mac[5] == 1 &&
              !strcmp(a.devs[1].cfg.vif.bridge, "xenbr0") &&
              !a.devs[2].cfg.vbd.readwrite);
    CHECK("args: devices need xenstore",
          parse(&a, ARGS("--disk", "51728:w:/a")) == -EINVAL &&
              parse(&a, ARGS("--xenstore", "--vif", "0,00:16:3e:00:00:01,br")) ==
                  -EINVAL);
    CHECK(
        "args: malformed disks",
        parse(&a, ARGS("--xenstore", "--xenstore-path", "/s", "--disk", "51728")) &&
            parse(&a, ARGS("--xenstore", "--xenstore-path", "/s", "--disk", "51728:w")) &&
            parse(&a,
                  ARGS("--xenstore", "--xenstore-path", "/s", "--disk", "51728:w:")) &&
            parse(&a, ARGS("--xenstore", "--xenstore-path", "/s", "--disk", "1:x:/a")) &&
            parse(&a, ARGS("--xenstore", "--xenstore-path", "/s", "--disk", "0:w:/a")) &&
            parse(&a, ARGS("--xenstore", "--xenstore-path", "/s", "--disk", ":w:/a")) &&
            parse(&a, ARGS("--xenstore", "--xenstore-path", "/s", "--disk", "-1:w:/a")));
    CHECK("args: malformed vifs",
          parse(&a, ARGS("--xenstore", "--xenstore-path", "/s", "--vif", "0")) &&
              parse(&a, ARGS("--xenstore", "--xenstore-path", "/s", "--vif",
                             "0,00:16:3e:00:00:100,br")) &&
              parse(&a, ARGS("--xenstore", "--xenstore-path", "/s", "--vif",
                             "0,00:16:3e:00:00:01,br,67")) &&
              parse(&a, ARGS("--xenstore", "--xenstore-path", "/s", "--vif",
                             "0,00:16:3e:00:00:01,br,1500x")) &&
              parse(&a, ARGS("--xenstore", "--xenstore-path", "/s", "--vif",
                             "0,00:16:3e:00:00:01,")));
    CHECK("args: bad numbers",
          parse(&a, ARGS("--vcpus", "0")) && parse(&a, ARGS("--domid", "32752")) &&
              parse(&a, ARGS("--memory", "x")) && parse(&a, ARGS("--ready-fd", "-1")));
    CHECK("args: --postcopy only with --restore",
          parse(&a, ARGS("--postcopy")) == -EINVAL);
    CHECK("args: unknown option and stray argument",
          parse(&a, ARGS("--bogus")) && parse(&a, ARGS("stray")));
    const char *many[2 * VM_MAX_DISKS + 8] = {"--xenstore", "--xenstore-path", "/s"};
    static char specs[VM_MAX_DISKS + 1][32];
    int n = 3;
    for (int i = 0; i <= VM_MAX_DISKS; i++) {
        snprintf(specs[i], sizeof(specs[i]), "%d:w:/d", 51728 + 16 * i);
        many[n++] = "--disk";
        many[n++] = specs[i];
    }
    many[n] = NULL;
    CHECK("args: at most VM_MAX_DISKS disks", parse(&a, many) == -EINVAL);
}

/* ---- a fake device kind ---- */

static char trace[256]; /* "+id" on start, "-id" on stop */
static int fail_start_id = -1;

struct fake_be {
    uint32_t id;
};

static int fake_parse(char *spec, union vm_dev_cfg *cfg, uint32_t *devid)
{
    uint64_t v;
    if (vm_parse_uint(spec, 1000, &v))
        return -EINVAL;
    cfg->vbd.devid = *devid = (uint32_t)v;
    return 0;
}

static int fake_start(struct domain *d, const char *xs_path, const union vm_dev_cfg *cfg,
                      void **be, char *err, size_t errlen)
{
    (void)d;
    (void)xs_path;
    uint32_t id = cfg->vbd.devid;
    if ((int)id == fail_start_id) {
        dfmt(err, errlen, "fake %u refused", (unsigned)id);
        return -EIO;
    }
    struct fake_be *b = malloc(sizeof(*b));
    b->id = id;
    *be = b;
    snprintf(trace + strlen(trace), sizeof(trace) - strlen(trace), "+%u", (unsigned)id);
    return 0;
}

static void fake_stop(void *be)
{
    struct fake_be *b = be;
    snprintf(trace + strlen(trace), sizeof(trace) - strlen(trace), "-%u",
             (unsigned)b->id);
    free(b);
}

static const struct vm_dev_kind fake_kind = {.name = "fake",
                                             .max = 3,
                                             .parse = fake_parse,
                                             .start = fake_start,
                                             .stop = fake_stop};
static const struct vm_dev_kind *const fake_kinds[] = {&fake_kind, &vm_kind_console,
                                                       NULL};

static int add_fake(uint32_t id, char *err, size_t len)
{
    union vm_dev_cfg cfg = {.vbd = {.devid = id}};
    return vm_dev_add(&vm, &fake_kind, &cfg, id, err, len);
}

static void setup_vm(void)
{
    struct vm_args a = {.name = "t", .vcpus = 2, .domid = 7};
    vm_setup(&vm, &a);
    vm.kinds = fake_kinds;
    vm.xs_path = "/nonexistent/xenstored";
    trace[0] = '\0';
}

static void test_devices(void)
{
    char err[128] = "";

    setup_vm();
    CHECK("devices: three started",
          !add_fake(1, err, sizeof(err)) && !add_fake(2, err, sizeof(err)) &&
              !add_fake(3, err, sizeof(err)) && !strcmp(trace, "+1+2+3"));
    CHECK("devices: a devid twice is refused",
          add_fake(2, err, sizeof(err)) == -EEXIST && strstr(err, "already attached"));
    CHECK("devices: a fourth is refused (max 3)",
          add_fake(4, err, sizeof(err)) == -ENOSPC && strstr(err, "at most 3"));
    CHECK("devices: count and find", vm_dev_count(&vm, &fake_kind) == 3 &&
                                         vm_dev_find(&vm, &fake_kind, 2) &&
                                         !vm_dev_find(&vm, &vm_kind_console, 2));
    CHECK("devices: remove", vm_dev_remove(&vm, &fake_kind, 2) == 0 &&
                                 vm_dev_remove(&vm, &fake_kind, 2) == -ENOENT &&
                                 !strcmp(trace, "+1+2+3-2"));
    fail_start_id = 9;
    CHECK("devices: a failed start leaves no device",
          add_fake(9, err, sizeof(err)) == -EIO && strstr(err, "fake 9 refused") &&
              vm_dev_count(&vm, &fake_kind) == 2);
    fail_start_id = -1;
    CHECK("devices: re-added after removal", add_fake(2, err, sizeof(err)) == 0);
    trace[0] = '\0';
    vm_dev_stop_all(&vm);
    CHECK("devices: stop_all, last started first",
          !strcmp(trace, "-2-3-1") && vm_dev_count(&vm, &fake_kind) == 0);
    const struct vm_dev_kind *real[] = {&vm_kind_console, &vm_kind_xs_ring, &vm_kind_vbd,
                                        &vm_kind_vif};
    bool notsup = true;
    for (unsigned i = 0; i < ARRAY_SIZE(real); i++)
        notsup = notsup && real[i]->save(NULL, -1) == -ENOTSUP &&
                 real[i]->load(NULL, -1) == -ENOTSUP;
    CHECK("devices: save/load say -ENOTSUP for every kind", notsup);
    /* vbd and vif quiesce (test_blkxs); the console's and the xenstore
     * ring's pages are the special ones, sent last anyway. */
    CHECK("devices: the console and xenstore ring say -ENOTSUP to quiesce/resume",
          vm_kind_console.quiesce(NULL) == -ENOTSUP &&
              vm_kind_console.resume(NULL) == -ENOTSUP &&
              vm_kind_xs_ring.quiesce(NULL) == -ENOTSUP &&
              vm_kind_xs_ring.resume(NULL) == -ENOTSUP);
    CHECK("devices: kinds by name, hot-pluggable ones parse",
          vm_dev_kind_find(vm_dev_kinds, "vbd") == &vm_kind_vbd &&
              vm_dev_kind_find(vm_dev_kinds, "vif") == &vm_kind_vif &&
              !vm_dev_kind_find(vm_dev_kinds, "disk") &&
              !vm_dev_kind_find(vm_dev_kinds, NULL) && !vm_kind_console.parse &&
              !vm_kind_xs_ring.parse);
}

/* ---- init levels ---- */

static char steps_trace[64];
static int fail_step = -1;

#define STEP(n)                                                                          \
    static int init##n(struct vm *v)                                                     \
    {                                                                                    \
        (void)v;                                                                         \
        if (fail_step == n)                                                              \
            return -EIO;                                                                 \
        strcat(steps_trace, "+" #n);                                                     \
        return 0;                                                                        \
    }                                                                                    \
    static __attribute__((unused)) void exit##n(struct vm *v)                            \
    {                                                                                    \
        (void)v;                                                                         \
        strcat(steps_trace, "-" #n);                                                     \
    }
STEP(1)
STEP(2)
STEP(3)
STEP(4)

static void test_steps(void)
{
    const struct vm_step steps[] = {{VM_LEVEL_CORE, "1", init1, exit1},
                                    {VM_LEVEL_CORE, "2", init2, NULL},
                                    {VM_LEVEL_DEV, "3", init3, exit3},
                                    {VM_LEVEL_LATE, "4", init4, exit4}};

    setup_vm();
    steps_trace[0] = '\0';
    CHECK("levels: init in order", vm_steps_init(&vm, steps, 4) == 0 && vm.levels == 4 &&
                                       !strcmp(steps_trace, "+1+2+3+4"));
    vm_steps_exit(&vm, steps);
    CHECK("levels: exit in reverse, steps without exit skipped",
          !strcmp(steps_trace, "+1+2+3+4-4-3-1") && vm.levels == 0);
    vm_steps_exit(&vm, steps);
    CHECK("levels: a second exit does nothing", !strcmp(steps_trace, "+1+2+3+4-4-3-1"));
    steps_trace[0] = '\0';
    fail_step = 4;
    CHECK("levels: a failed step undoes those before it, in reverse",
          vm_steps_init(&vm, steps, 4) == -EIO && vm.levels == 0 &&
              !strcmp(steps_trace, "+1+2+3-3-1"));
    fail_step = 1;
    steps_trace[0] = '\0';
    CHECK("levels: a failed first step undoes nothing",
          vm_steps_init(&vm, steps, 4) == -EIO && !steps_trace[0]);
    fail_step = -1;
    const struct vm_step bad[] = {{VM_LEVEL_DEV, "3", init3, exit3},
                                  {VM_LEVEL_CORE, "1", init1, exit1}};
    steps_trace[0] = '\0';
    CHECK("levels: a table out of level order runs nothing",
          vm_steps_init(&vm, bad, 2) == -EINVAL && !steps_trace[0] &&
              strstr(vm.err, "out of level order"));
}

/* ---- control commands ---- */

static json_object *ctl(const char *line)
{
    int fds[VMCTL_MAX_FDS];
    unsigned n = 99;
    json_object *r = vm_ctl_handle(&vm, line, fds, &n);
    return n == 0 ? r : NULL;
}

/* The reply to line is an error whose text holds want. */
static bool refused(const char *line, const char *want)
{
    const char *e = NULL;
    json_object *r = ctl(line);
    bool ok = r && !vmctl_ok(r, &e) && e && strstr(e, want);
    if (!ok)
        printf("  %s -> %s\n", line, r ? json_object_to_json_string(r) : "(null)");
    json_object_put(r);
    return ok;
}

static bool accepted(const char *line)
{
    json_object *r = ctl(line);
    bool ok = r && vmctl_ok(r, NULL);
    if (!ok)
        printf("  %s -> %s\n", line, r ? json_object_to_json_string(r) : "(null)");
    json_object_put(r);
    return ok;
}

static bool info_is(const char *state)
{
    json_object *r = ctl("{\"cmd\":\"info\"}"), *v;
    uint64_t vcpus = 0, ns = 1;
    bool ok = r && vmctl_ok(r, NULL) && json_object_object_get_ex(r, "state", &v) &&
              !strcmp(json_object_get_string(v), state) &&
              !vmctl_get_u64(r, "vcpus", 64, &vcpus) && vcpus == 2 &&
              !vmctl_get_u64(r, "cputime_ns", UINT64_MAX, &ns) && ns == 0 &&
              json_object_object_get_ex(r, "mem_kib", NULL);
    json_object_put(r);
    return ok;
}

static void test_control(void)
{
    setup_vm();
    CHECK("control: malformed lines",
          refused("", "malformed request") && refused("{", "malformed request") &&
              refused("{\"cmd\":", "malformed request") &&
              refused("{\"cmd\":\"pau", "malformed request") &&
              refused("[1]", "not a JSON object") &&
              refused("\"x\"", "not a JSON object") &&
              refused("disk-attach 1:w:/x", "malformed request"));
    CHECK("control: missing, non-string and unknown commands",
          refused("{}", "unknown command '(none)'") &&
              refused("{\"cmd\":5}", "unknown command '(none)'") &&
              refused("{\"cmd\":\"detach \"}", "unknown command") &&
              refused("{\"cmd\":\"reboot\"}", "unknown command 'reboot'"));
    CHECK("control: info, pause, unpause",
          info_is("r") && accepted("{\"cmd\":\"pause\"}") && info_is("p") &&
              accepted("{\"cmd\":\"unpause\"}") && info_is("r"));
    CHECK("control: shutdown has no PV interface",
          refused("{\"cmd\":\"shutdown\",\"how\":\"poweroff\"}", "PV control interface"));
    CHECK("control: xs-ring without a ring",
          refused("{\"cmd\":\"xs-ring\"}", "no xenstore ring"));
    CHECK("control: attach with kind or spec missing, wrong or truncated",
          refused("{\"cmd\":\"attach\"}", "\"kind\"") &&
              refused("{\"cmd\":\"attach\",\"kind\":7,\"spec\":\"1\"}", "\"kind\"") &&
              refused("{\"cmd\":\"attach\",\"kind\":\"nic\",\"spec\":\"1\"}",
                      "'nic' is not a device kind") &&
              refused("{\"cmd\":\"attach\",\"kind\":\"console\",\"spec\":\"1\"}",
                      "'console' is not a device kind") &&
              refused("{\"cmd\":\"attach\",\"kind\":\"fake\"}", "\"spec\"") &&
              refused("{\"cmd\":\"attach\",\"kind\":\"fake\",\"spec\":\"\"}",
                      "malformed fake spec") &&
              refused("{\"cmd\":\"attach\",\"kind\":\"fake\",\"spec\":\"1x\"}",
                      "malformed fake spec"));
    CHECK("control: attach, twice, detach",
          accepted("{\"cmd\":\"attach\",\"kind\":\"fake\",\"spec\":\"5\"}") &&
              !strcmp(trace, "+5") &&
              refused("{\"cmd\":\"attach\",\"kind\":\"fake\",\"spec\":\"5\"}",
                      "fake 5 is already attached") &&
              accepted("{\"cmd\":\"detach\",\"kind\":\"fake\",\"devid\":5}") &&
              !strcmp(trace, "+5-5"));
    CHECK(
        "control: detach with devid missing, mistyped, out of range or unknown",
        refused("{\"cmd\":\"detach\",\"kind\":\"fake\"}", "\"devid\"") &&
            refused("{\"cmd\":\"detach\",\"kind\":\"fake\",\"devid\":\"5\"}",
                    "\"devid\"") &&
            refused("{\"cmd\":\"detach\",\"kind\":\"fake\",\"devid\":-1}", "\"devid\"") &&
            refused("{\"cmd\":\"detach\",\"kind\":\"fake\",\"devid\":4294967296}",
                    "\"devid\"") &&
            refused("{\"cmd\":\"detach\",\"kind\":\"fake\",\"devid\":5}",
                    "no fake with devid 5"));
    CHECK("control: the real vbd and vif kinds refuse malformed specs",
          (vm.kinds = vm_dev_kinds) &&
              refused("{\"cmd\":\"attach\",\"kind\":\"vbd\",\"spec\":\"51728\"}",
                      "malformed vbd spec") &&
              refused("{\"cmd\":\"attach\",\"kind\":\"vbd\",\"spec\":\"51728:w\"}",
                      "malformed vbd spec") &&
              refused("{\"cmd\":\"attach\",\"kind\":\"vbd\",\"spec\":\"51728:w:\"}",
                      "malformed vbd spec") &&
              refused("{\"cmd\":\"attach\",\"kind\":\"vif\",\"spec\":\"0,00:16\"}",
                      "malformed vif spec"));
    vm.xs_path = NULL;
    CHECK("control: no hot-plug without xenstore",
          refused("{\"cmd\":\"attach\",\"kind\":\"vbd\",\"spec\":\"51728:w:/x\"}",
                  "no xenstore") &&
              refused("{\"cmd\":\"detach\",\"kind\":\"vbd\",\"devid\":51728}",
                      "no xenstore"));
    vm_dev_stop_all(&vm);
}

/* ---- save (vm_suspend.c) ---- */

static int fs_vcpu_save(struct vcpu *v, struct simg_vcpu *s)
{
    s->regs.rax = v->id;
    s->mp_state.mp_state = KVM_MP_STATE_RUNNABLE;
    return 0;
}
static int fs_vcpu_load(struct vcpu *v, const struct simg_vcpu *s)
{
    (void)v, (void)s;
    return 0;
}
static int fs_clock_save(struct domain *d, struct simg_clock *c)
{
    (void)d;
    *c = (struct simg_clock){123456789, 0, 2000000};
    return 0;
}
static int fs_clock_load(struct domain *d, const struct simg_clock *c)
{
    (void)d, (void)c;
    return 0;
}
static const struct vm_state_ops fake_state = {
    fs_vcpu_save, fs_vcpu_load, fs_clock_save, fs_clock_load, NULL, NULL, NULL};

/* The save command with the image fd attached. */
static json_object *save_req(const char *after, unsigned timeout_ms, int fd)
{
    char line[256];
    int fds[VMCTL_MAX_FDS];
    unsigned n = 0;

    snprintf(line, sizeof(line),
             "{\"cmd\":\"save\",\"config\":\"{\\\"name\\\":\\\"t\\\"}\","
             "\"after\":\"%s\",\"timeout_ms\":%u}",
             after, timeout_ms);
    return vm_ctl_handle_fds(&vm, line, &fd, fd >= 0, fds, &n);
}

static bool reply_ok(json_object *r, const char *want_error)
{
    const char *e = NULL;
    bool ok = r && (want_error ? !vmctl_ok(r, &e) && e && strstr(e, want_error)
                               : vmctl_ok(r, NULL));
    if (!ok)
        printf("  -> %s\n", r ? json_object_to_json_string(r) : "(null)");
    json_object_put(r);
    return ok;
}

static bool image_has_config(const char *path)
{
    struct simg_reader r;
    char *config = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    bool ok = fd >= 0;

    simg_reader_init_fd(&r, fd);
    ok = ok && vm_restore_header(&r, &config) == 0 && !strcmp(config, "{\"name\":\"t\"}");
    free(config);
    simg_reader_free(&r);
    if (fd >= 0)
        close(fd);
    return ok;
}

static void suspend_now(void)
{
    uint64_t one = 1;
    atomic_store(&vm.dom.suspended, true);
    if (write(vm.dom.event_fd, &one, sizeof(one)) != sizeof(one))
        printf("  event fd write failed\n");
}

static void test_save(void)
{
    char path[] = "/tmp/test_vm_saveXXXXXX";
    struct domain *d = &vm.dom;
    int fd = mkstemp(path), ro;
    struct stat st;
    json_object *r;
    uint64_t bytes = 0;

    setup_vm();
    vm.state_ops = &fake_state;
    d->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    CHECK("save: set-up",
          fd >= 0 && gmem_init(&d->mem, GMEM_MIN_RAM) == 0 && d->event_fd >= 0);
    CHECK("save: the image's descriptor must come with it",
          reply_ok(save_req("resume", 10, -1), "descriptor"));
    CHECK("save: after and timeout checked",
          reply_ok(save_req("later", 10, fd), "\"after\"") &&
              reply_ok(save_req("resume", 600001, fd), "\"timeout_ms\"") &&
              refused("{\"cmd\":\"save\",\"after\":\"resume\",\"timeout_ms\":5}",
                      "descriptor"));
    CHECK("save: a guest that does not suspend times out, nothing written",
          reply_ok(save_req("resume", 50, fd), "did not suspend within 50 ms") &&
              fstat(fd, &st) == 0 && st.st_size == 0 && !atomic_load(&d->paused));

    suspend_now();
    r = save_req("resume", 1000, fd);
    CHECK("save -c: written, the guest resumed (not suspended, not paused)",
          r && vmctl_ok(r, NULL) && !vmctl_get_u64(r, "bytes", UINT64_MAX, &bytes) &&
              fstat(fd, &st) == 0 && (uint64_t)st.st_size == bytes && bytes > 4096 &&
              !atomic_load(&d->suspended) && !atomic_load(&d->paused) &&
              !vm.hold_suspend);
    json_object_put(r);
    CHECK("save: the image's header holds the config", image_has_config(path));

    suspend_now();
    CHECK("save -p: written, resumed but paused",
          reply_ok(save_req("pause", 1000, fd), NULL) && !atomic_load(&d->suspended) &&
              atomic_load(&d->paused));
    kvm_domain_pause(d, false);

    suspend_now();
    CHECK("save: the guest is held suspended and paused for its destroy",
          reply_ok(save_req("destroy", 1000, fd), NULL) && atomic_load(&d->suspended) &&
              atomic_load(&d->paused) && vm.hold_suspend);
    vm_event(&vm);
    CHECK("save: the main loop leaves a held suspend alone",
          atomic_load(&d->suspended) && vm.hold_suspend);
    CHECK("save: a second save of a held domain is refused",
          reply_ok(save_req("resume", 10, fd), "saved already"));
    CHECK("resume: a held suspend is cancelled, the guest runs",
          accepted("{\"cmd\":\"resume\"}") && !atomic_load(&d->suspended) &&
              !atomic_load(&d->paused) && !vm.hold_suspend);
    CHECK("resume: nothing held", refused("{\"cmd\":\"resume\"}", "not held"));

    ro = open(path, O_RDONLY | O_CLOEXEC);
    suspend_now();
    CHECK("save: a failed write cancels the suspend, the guest runs on",
          reply_ok(save_req("destroy", 1000, ro), "writing") &&
              !atomic_load(&d->suspended) && !atomic_load(&d->paused) &&
              !vm.hold_suspend);
    close(ro);

    suspend_now();
    vm_event(&vm);
    CHECK("a suspend nobody saves is cancelled by the main loop",
          !atomic_load(&d->suspended) && !atomic_load(&d->paused));

    atomic_store(&d->shutdown_reason, 0);
    CHECK("save: a domain that shuts down instead",
          reply_ok(save_req("resume", 1000, fd), "shut down instead"));
    close(fd);
    unlink(path);
    close(d->event_fd);
    d->event_fd = -1;
    gmem_destroy(&d->mem);
}

/* ---- live migration (vm_migrate.c) ---- */

/* Fake dirty logging: each dirty_get reports fake_dirty[call] pages from
 * page 16 on (the guest rewriting them meanwhile: page 16 holds the call's
 * number), then nothing. */
static unsigned fake_calls, fake_started;
static const uint64_t *fake_dirty;
static int fd_start(struct domain *d)
{
    (void)d;
    fake_started = 1;
    return 0;
}
static int fd_get(struct domain *d, uint64_t *bm)
{
    uint64_t n = fake_dirty[fake_calls++];
    memset(gmem_ptr(&d->mem, 16 * 4096, 4096), (int)fake_calls, 4096);
    for (uint64_t p = 16; p < 16 + n; p++)
        bm[p / 64] |= 1ULL << (p % 64);
    if (fake_dirty[fake_calls] == UINT64_MAX)
        fake_calls--; /* the last count repeats */
    return 0;
}
static void fd_stop(struct domain *d)
{
    (void)d;
    fake_started = 0;
}
static const struct vm_state_ops fake_mig_state = {
    fs_vcpu_save, fs_vcpu_load, fs_clock_save, fs_clock_load, fd_start, fd_get, fd_stop};

static json_object *precopy_req(int fd, unsigned downtime_ms, unsigned rounds)
{
    char line[256];
    int fds[VMCTL_MAX_FDS];
    unsigned n = 0;

    snprintf(line, sizeof(line),
             "{\"cmd\":\"migrate-precopy\",\"config\":\"{\\\"name\\\":\\\"t\\\"}\","
             "\"downtime_ms\":%u,\"max_rounds\":%u}",
             downtime_ms, rounds);
    return vm_ctl_handle_fds(&vm, line, &fd, fd >= 0, fds, &n);
}

static int noop_rec(void *ctx, const struct simg_rec *rec, char *err, size_t errlen)
{
    (void)ctx, (void)rec, (void)err, (void)errlen;
    return 0;
}
static int load_rec(void *ctx, const struct simg_rec *rec, char *err, size_t errlen)
{
    return simg_load_pages(ctx, rec->body, rec->len, err, errlen);
}

/* The stream in path read into a fresh memory: 0 when it is whole. */
static int read_stream(const char *path, struct gmem *m)
{
    struct simg_handler h[18];
    struct simg_reader r;
    char *config = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

    for (uint32_t t = 0; t < ARRAY_SIZE(h); t++)
        h[t] = (struct simg_handler){t, t == SIMG_REC_PAGE_DATA ? load_rec : noop_rec};
    simg_reader_init_fd(&r, fd);
    rc = vm_restore_header(&r, &config);
    if (!rc)
        rc = simg_read_all(&r, h + 1, ARRAY_SIZE(h) - 1, m);
    if (rc)
        printf("  stream: %s\n", r.err);
    free(config);
    simg_reader_free(&r);
    close(fd);
    return rc;
}

static uint8_t page_byte(const struct gmem *m, uint64_t pfn)
{
    return *(const uint8_t *)gmem_ptr(m, pfn * 4096, 1);
}

static void test_migrate(void)
{
    static const uint64_t shrinking[] = {2000, 300, 40, UINT64_MAX},
                          steady[] = {5000, 5000, 5000, 5000, UINT64_MAX};
    char path[] = "/tmp/test_vm_migXXXXXX";
    struct domain *d = &vm.dom;
    struct gmem dst;
    int fd = mkstemp(path);
    uint64_t rounds = 0, pages = 0;
    json_object *r;

    setup_vm();
    vm.state_ops = &fake_mig_state;
    d->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    CHECK("migrate: set-up", fd >= 0 && gmem_init(&d->mem, GMEM_MIN_RAM) == 0 &&
                                 gmem_init(&dst, GMEM_MIN_RAM) == 0);
    memset(gmem_ptr(&d->mem, 16 * 4096, 4096), 0xaa, 4096);
    memset(gmem_ptr(&d->mem, 17 * 4096, 4096), 0xbb, 4096);
    fake_dirty = shrinking;
    fake_calls = 0;
    /* Round 1's 2000 pages take 78 ms at the bandwidth assumed before one is
     * measured (round 0's two pages are too few): over 50 ms, sent; round
     * 3's 40 pages are under 50 ms at any bandwidth above 3.2 MB/s measured
     * since (a 5 ms target failed on a loaded machine: a round written at
     * under 32 MB/s). */
    r = precopy_req(fd, 50, 10);
    CHECK("migrate: pre-copy runs rounds until the dirty set is small, the guest runs",
          r && vmctl_ok(r, NULL) && !vmctl_get_u64(r, "rounds", 100, &rounds) &&
              !vmctl_get_u64(r, "pages", UINT64_MAX, &pages) && rounds >= 2 &&
              rounds <= 3 && pages >= 2002 && fake_started && vm.mig &&
              !atomic_load(&d->paused));
    json_object_put(r);
    CHECK("migrate: a second pre-copy is refused",
          reply_ok(precopy_req(fd, 1000, 10), "already"));
    vm_event(&vm);
    memset(gmem_ptr(&d->mem, 17 * 4096, 4096), 0, 4096); /* became zero */
    fake_dirty = (const uint64_t[]){2, UINT64_MAX};
    fake_calls = 0;
    suspend_now();
    vm_event(&vm);
    CHECK("migrate: the main loop leaves a migration's suspend alone",
          atomic_load(&d->suspended));
    CHECK("migrate: finish sends the rest, the guest is held for its destroy",
          accepted("{\"cmd\":\"migrate-finish\",\"timeout_ms\":1000}") &&
              atomic_load(&d->suspended) && vm.hold_suspend && !vm.mig && !fake_started);
    CHECK("migrate: the stream is whole; a page's last copy wins, a page that became "
          "zero is zero",
          read_stream(path, &dst) == 0 && page_byte(&dst, 16) == page_byte(&d->mem, 16) &&
              page_byte(&d->mem, 16) != 0xaa && page_byte(&dst, 17) == 0);
    CHECK("resume: the held suspend is cancelled", accepted("{\"cmd\":\"resume\"}"));

    fake_dirty = steady;
    fake_calls = 0;
    CHECK("migrate: a dirty set that does not shrink stops the rounds",
          (r = precopy_req(fd, 0, 50)) && vmctl_ok(r, NULL) &&
              !vmctl_get_u64(r, "rounds", 100, &rounds) && rounds <= 4);
    json_object_put(r);
    CHECK("migrate: an abort ends logging, the guest runs on",
          accepted("{\"cmd\":\"migrate-abort\"}") && !vm.mig && !fake_started &&
              !atomic_load(&d->paused));
    vm.lazy = vm_lazy_new(&d->mem);
    atomic_store(&vm.lazy_rc, 0);
    CHECK("migrate: refused while the guest's memory is still arriving (a lazy "
          "restore's fill, a post-copy's pull), nothing started",
          vm.lazy && reply_ok(precopy_req(fd, 1000, 10), "still arriving") && !vm.mig &&
              !fake_started);
    suspend_now();
    CHECK("save: refused while the guest's memory is still arriving",
          reply_ok(save_req("resume", 1000, fd), "still arriving") &&
              atomic_load(&d->suspended));
    atomic_store(&vm.lazy_rc, 1);
    CHECK("migrate, save: taken once every page is in",
          reply_ok(save_req("resume", 1000, fd), NULL) && !atomic_load(&d->suspended));
    vm_lazy_free(vm.lazy);
    vm.lazy = NULL;
    int ro = open(path, O_RDONLY | O_CLOEXEC);
    fake_calls = 0;
    CHECK("migrate: a stream that cannot be written fails, nothing left open",
          reply_ok(precopy_req(ro, 1000, 10), "sending") && !vm.mig && !fake_started);
    close(ro);
    int sv[2];
    fake_calls = 0;
    fake_dirty = shrinking;
    CHECK("migrate: a receiver that speaks up (its error) ends the pre-copy",
          socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0 &&
              write(sv[1], "error: no\n", 10) == 10 &&
              reply_ok(precopy_req(sv[0], 5, 10), "connection abort") && !vm.mig &&
              !fake_started && fake_calls == 0);
    close(sv[0]);
    close(sv[1]);
    CHECK("migrate: finish without a pre-copy is refused",
          refused("{\"cmd\":\"migrate-finish\",\"timeout_ms\":10}", "no migration"));
    close(fd);
    unlink(path);
    close(d->event_fd);
    d->event_fd = -1;
    gmem_destroy(&dst);
    gmem_destroy(&d->mem);
}

/* ---- post-copy: vm_migrate.c's source, vm_lazy.c's destination ---- */

#define PC_PAGES 3000 /* pages 16 .. 16 + PC_PAGES - 1: the dirty set */

struct pc_dst {
    int fd;
    struct gmem *m;
    struct vm_lazy *lz;
    int rc;
    char err[256];
};

static int pcd_postcopy(void *ctx, const struct simg_rec *rec, char *err, size_t errlen)
{
    struct pc_dst *p = ctx;
    return vm_lazy_postcopy_set(p->lz, rec, err, errlen);
}

/* The destination reads the stream as domus-vm --postcopy does: the pages
 * straight into its memory, the post-copy record into the lazy state. */
static void *pc_reader(void *arg)
{
    struct pc_dst *p = arg;
    struct simg_handler h[SIMG_REC_POSTCOPY];
    struct simg_reader r;
    char *config = NULL;

    for (uint32_t t = 1; t <= SIMG_REC_POSTCOPY; t++)
        h[t - 1] =
            (struct simg_handler){t, t == SIMG_REC_POSTCOPY ? pcd_postcopy : noop_rec};
    simg_reader_init_fd(&r, p->fd);
    r.pages_to = p->m;
    p->rc = vm_restore_header(&r, &config) ?: simg_read_all(&r, h, ARRAY_SIZE(h), p);
    snprintf(p->err, sizeof(p->err), "%s", r.err);
    free(config);
    simg_reader_free(&r);
    return NULL;
}

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, rc;
    char err[256];
} pc_end = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, ""};

static void pc_done(void *ctx, int rc, const char *err)
{
    (void)ctx;
    pthread_mutex_lock(&pc_end.lock);
    pc_end.done = 1;
    pc_end.rc = rc;
    snprintf(pc_end.err, sizeof(pc_end.err), "%s", err ? err : "");
    pthread_cond_signal(&pc_end.cond);
    pthread_mutex_unlock(&pc_end.lock);
}

static int pc_wait_done(void)
{
    struct timespec t;
    int rc = 0;

    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += 30;
    pthread_mutex_lock(&pc_end.lock);
    while (!pc_end.done && rc == 0)
        rc = pthread_cond_timedwait(&pc_end.cond, &pc_end.lock, &t);
    rc = pc_end.done ? pc_end.rc : -ETIMEDOUT;
    pc_end.done = 0;
    pthread_mutex_unlock(&pc_end.lock);
    return rc;
}

/* The guest on the destination: reads the last page of the dirty set
 * (a fault the source must answer). */
static uint64_t pc_touched;
static void *pc_toucher(void *arg)
{
    pc_touched = *(volatile uint64_t *)gmem_ptr(arg, (16 + PC_PAGES - 1) * 4096ULL, 8);
    return NULL;
}

/* Pre-copy round 0 and one round left undone, then a post-copy finish:
 * the stream read by a destination thread; the post-copy lazy state of
 * the destination ready.  true when both ends got there. */
static bool pc_start(int sv[2], struct gmem *dst, struct pc_dst *p)
{
    static const uint64_t dirty[] = {PC_PAGES, PC_PAGES, UINT64_MAX};
    struct domain *d = &vm.dom;
    pthread_t th;
    json_object *r;
    bool ok;

    fallocate(dst->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, GMEM_MIN_RAM);
    *p = (struct pc_dst){sv[1], dst, vm_lazy_new(dst), 0, ""};
    for (uint64_t i = 16; i < 16 + PC_PAGES; i++)
        *(uint64_t *)gmem_ptr(&d->mem, i * 4096, 8) = i << 8 | 1;
    fake_dirty = dirty;
    fake_calls = 0;
    pthread_create(&th, NULL, pc_reader, p);
    r = precopy_req(sv[0], 60000, 10); /* the first dirty round is left */
    ok = r && vmctl_ok(r, NULL) && vm.mig;
    json_object_put(r);
    for (uint64_t i = 16; i < 16 + PC_PAGES; i++) /* the guest runs on */
        *(uint64_t *)gmem_ptr(&d->mem, i * 4096, 8) = i << 8 | 2;
    suspend_now();
    ok = ok && accepted("{\"cmd\":\"migrate-finish\",\"timeout_ms\":1000,"
                        "\"postcopy\":true}");
    pthread_join(th, NULL);
    if (p->rc)
        printf("  destination: %s\n", p->err);
    return ok && p->rc == 0;
}

static void test_postcopy(void)
{
    struct domain *d = &vm.dom;
    struct gmem dst;
    struct pc_dst p;
    struct vm_lazy_stats st;
    uint64_t asked = 0, pushed = 0, n = 0;
    char err[256] = "";
    int sv[2];
    pthread_t toucher;
    json_object *r;

    setup_vm();
    vm.state_ops = &fake_mig_state;
    d->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    CHECK("postcopy: set-up",
          gmem_init(&d->mem, GMEM_MIN_RAM) == 0 && gmem_init(&dst, GMEM_MIN_RAM) == 0 &&
              socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    CHECK("postcopy: finish sends the state and a post-copy record, keeps the "
          "connection, the guest held",
          pc_start(sv, &dst, &p) && vm.mig && vm.hold_suspend && atomic_load(&d->paused));
    CHECK("postcopy: the destination has round 0's copies (stale) before the serve",
          *(uint64_t *)gmem_ptr(&dst, 20 * 4096, 8) == (20 << 8 | 1));
    int rc = vm_lazy_serve_conn(p.lz, sv[1], err, sizeof(err));
    if (rc)
        printf("  serve: %s\n", err);
    vm_lazy_stats(p.lz, &st);
    CHECK("postcopy: the dirty set is wanted, dropped and served on fault",
          rc == 0 && st.wanted == PC_PAGES);
    uint64_t hole = *(volatile uint64_t *)gmem_ptr(&dst, 8000 * 4096ULL, 8);
    vm_lazy_stats(p.lz, &st);
    CHECK("postcopy: a page neither side holds is a zero page, not asked for",
          hole == 0 && st.zero_faults == 1 && st.faults == 0);
    pthread_create(&toucher, NULL, pc_toucher, &dst);
    for (int i = 0; i < 500 && (vm_lazy_stats(p.lz, &st), st.faults == 0); i++)
        usleep(10000);
    CHECK("postcopy: a touch of a wanted page asks the source", st.faults == 1);
    rc = vm_lazy_pull(p.lz, pc_done, NULL, err, sizeof(err));
    r = ctl("{\"cmd\":\"migrate-postcopy\"}");
    CHECK("postcopy: the source sends the pages asked for first, pushes the rest, "
          "and ends when the destination has them all",
          rc == 0 && r && vmctl_ok(r, NULL) &&
              !vmctl_get_u64(r, "pc_asked", UINT64_MAX, &asked) &&
              !vmctl_get_u64(r, "pc_pushed", UINT64_MAX, &pushed) &&
              !vmctl_get_u64(r, "pc_pages", UINT64_MAX, &n) && asked >= 1 &&
              asked + pushed == PC_PAGES && n == PC_PAGES);
    json_object_put(r);
    rc = pc_wait_done();
    if (rc)
        printf("  pull: %s\n", pc_end.err);
    pthread_join(toucher, NULL);
    CHECK("postcopy: the pull ends, every page in; the faulting thread got the latest",
          rc == 0 && pc_touched == ((16 + PC_PAGES - 1ULL) << 8 | 2));
    CHECK("postcopy: the destination's memory equals the source's",
          memcmp(dst.host, d->mem.host,
                 GMEM_MIN_RAM + GMEM_SPECIAL_PAGES * DOMUS_PAGE_SIZE) == 0);
    CHECK("postcopy: the source's migration ends, its copy held for the destroy",
          !vm.mig && vm.hold_suspend && atomic_load(&d->suspended));
    vm_lazy_free(p.lz);
    close(sv[0]);
    close(sv[1]);
    CHECK("postcopy: the held copy resumes (the test's own cleanup)",
          accepted("{\"cmd\":\"resume\"}"));

    /* The link lost in the post-copy phase: both ends say so. */
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    CHECK("postcopy cut: set-up", pc_start(sv, &dst, &p));
    rc = vm_lazy_serve_conn(p.lz, sv[1], err, sizeof(err))
             ?: vm_lazy_pull(p.lz, pc_done, NULL, err, sizeof(err));
    shutdown(sv[0], SHUT_RDWR);
    CHECK("postcopy cut: the destination's pull fails, naming the pages not in",
          rc == 0 && pc_wait_done() < 0 && strstr(pc_end.err, "of 3000 pages not in"));
    CHECK("postcopy cut: the source fails too",
          refused("{\"cmd\":\"migrate-postcopy\"}", "pages sent"));
    CHECK("postcopy cut: the source's copy stays held and paused, not resumed",
          !vm.mig && vm.hold_suspend && atomic_load(&d->suspended) &&
              atomic_load(&d->paused));
    CHECK("postcopy cut: no second post-copy",
          refused("{\"cmd\":\"migrate-postcopy\"}", "no post-copy"));
    CHECK("postcopy cut: the source's copy can be neither unpaused nor resumed",
          refused("{\"cmd\":\"unpause\"}", "must not run") &&
              refused("{\"cmd\":\"resume\"}", "must not run") &&
              atomic_load(&d->paused) && vm.hold_suspend);
    vm_lazy_free(p.lz);
    close(sv[0]);
    close(sv[1]);
    vm.pc_failed = false; /* the test's own cleanup */
    accepted("{\"cmd\":\"resume\"}");
    close(d->event_fd);
    d->event_fd = -1;
    gmem_destroy(&dst);
    gmem_destroy(&d->mem);
}

/* ---- transport ---- */

static void *serve_once(void *arg)
{
    (void)arg;
    vm_ctl_serve(&vm);
    return NULL;
}

static void test_transport(void)
{
    int sv[2], fds[VMCTL_MAX_FDS], efd = eventfd(0, EFD_CLOEXEC);
    unsigned n = VMCTL_MAX_FDS;
    char line[64], big[VMCTL_LINE_MAX + 16];
    json_object *o = vmctl_req("info");

    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    int sent[2] = {efd, efd};
    CHECK("transport: a line with two fds",
          vmctl_send(sv[0], o, sent, 2) == 0 &&
              vmctl_recv_line(sv[1], line, sizeof(line), fds, &n, 1000) == 0 &&
              !strcmp(line, "{\"cmd\":\"info\"}") && n == 2 && fds[0] != efd &&
              fds[1] >= 0);
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
    n = VMCTL_MAX_FDS;
    CHECK("transport: nothing arrives: timeout",
          vmctl_recv_line(sv[1], line, sizeof(line), fds, &n, 50) == -ETIMEDOUT && !n);
    CHECK("transport: a line in pieces",
          write(sv[0], "{\"a\":", 5) == 5 && write(sv[0], "1}\n", 3) == 3 &&
              vmctl_recv_line(sv[1], line, sizeof(line), NULL, NULL, 1000) == 0 &&
              !strcmp(line, "{\"a\":1}"));
    memset(big, 'x', sizeof(big));
    CHECK("transport: a line too long",
          write(sv[0], big, 100) == 100 &&
              vmctl_recv_line(sv[1], line, sizeof(line), NULL, NULL, 1000) == -EMSGSIZE);
    close(sv[1]);
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    CHECK("transport: EOF before the newline",
          write(sv[0], "{\"cmd\"", 6) == 6 && close(sv[0]) == 0 &&
              vmctl_recv_line(sv[1], line, sizeof(line), NULL, NULL, 1000) == -EPROTO);
    close(sv[1]);
    json_object_put(o);
    close(efd);

    /* A whole exchange with vm_ctl_serve on a real control socket. */
    char dir[] = "/tmp/test_vm_XXXXXX", sock[64], err[128];
    pthread_t t;
    json_object *reply = NULL;
    const char *e = NULL;
    if (!mkdtemp(dir))
        return;
    snprintf(sock, sizeof(sock), "%s/ctl", dir);
    setup_vm();
    vm.ctl_fd = unix_listen(sock, 0, "control socket", err, sizeof(err));
    pthread_create(&t, NULL, serve_once, NULL);
    o = vmctl_req("detach");
    CHECK("transport: vmctl_call to vm_ctl_serve",
          vmctl_call(sock, o, &reply, NULL, NULL, 2000) == 0 && !vmctl_ok(reply, &e) &&
              strstr(e, "\"kind\""));
    pthread_join(t, NULL);
    json_object_put(reply);
    json_object_put(o);
    o = vmctl_req("info");
    CHECK("transport: nobody listening",
          vmctl_call("/nonexistent/sock", o, &reply, NULL, NULL, 100) == -ENOENT &&
              !reply);
    json_object_put(o);
    close(vm.ctl_fd);
    unlink(sock);
    rmdir(dir);
}

int main(void)
{
    test_args();
    test_devices();
    test_steps();
    test_control();
    test_save();
    test_migrate();
    test_postcopy();
    test_transport();
    return failures ? 1 : 0;
}
