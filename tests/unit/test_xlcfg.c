/* Unit tests of the xl.cfg parser: good configs, each error, hostile input. */
#include "domus/xlcfg.h"
#include "domus/xldisk.h"
#include "domus/xlvif.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static struct xlcfg cfg;
static char err[1024];

static int parse(const char *text)
{
    err[0] = '\0';
    return xlcfg_parse_string(text, "t.cfg", &cfg, err, sizeof(err));
}

/* Parses text, expects failure with an error containing want. */
static void expect_error(const char *name, const char *text, const char *want)
{
    int rc = parse(text);
    int ok = rc == -EINVAL && strstr(err, want) != NULL;
    if (!ok)
        fprintf(stderr, "  %s: rc=%d err='%s' want '%s'\n", name, rc, err, want);
    CHECK(name, ok);
}

static void test_minimal(void)
{
    int rc = parse("name = \"g1\"\nkernel = \"/boot/vmlinuz\"\n");
    CHECK("minimal parses", rc == 0);
    CHECK("minimal defaults",
          !strcmp(cfg.name, "g1") && !strcmp(cfg.type, "pvh") && cfg.memory_mb == 128 &&
              cfg.maxmem_mb == 128 && cfg.vcpus == 1 && cfg.maxvcpus == 1 &&
              cfg.on_poweroff == XLCFG_ACTION_DESTROY &&
              cfg.on_reboot == XLCFG_ACTION_RESTART &&
              cfg.on_crash == XLCFG_ACTION_DESTROY && cfg.ramdisk[0] == '\0' &&
              cfg.cmdline[0] == '\0' && cfg.uuid[0] == '\0' && cfg.n_disks == 0);
}

static void test_full(void)
{
    const char *text = "# a full guest\n"
                       "name = 'web-1.example_x'   # trailing comment\n"
                       "type = \"pvh\";\n"
                       "kernel = \"/k\" ; ramdisk = '/r'\n"
                       "cmdline = \"console=hvc0 domus.test=basic\"\n"
                       "memory = 256\n"
                       "maxmem = 0x200\n"
                       "vcpus = 4\n"
                       "maxvcpus = 8\n"
                       "on_poweroff = \"destroy\"\n"
                       "on_reboot = \"restart\"\n"
                       "on_crash = 'preserve'\n"
                       "uuid = \"5E3F1A2B-0000-4000-8000-00000000ABCD\"\n"
                       "disk = [ 'format=raw, vdev=xvda, access=rw, target=/d.img',\n"
                       "         \"/e.img,raw,xvdb,r\", ]\n"
                       "vif = [ ]\n";
    int rc = parse(text);
    if (rc)
        fprintf(stderr, "  full: %s\n", err);
    CHECK("full parses", rc == 0);
    CHECK("full values", !strcmp(cfg.name, "web-1.example_x") &&
                             !strcmp(cfg.kernel, "/k") && !strcmp(cfg.ramdisk, "/r") &&
                             !strcmp(cfg.cmdline, "console=hvc0 domus.test=basic") &&
                             cfg.memory_mb == 256 && cfg.maxmem_mb == 512 &&
                             cfg.vcpus == 4 && cfg.maxvcpus == 8 &&
                             cfg.on_crash == XLCFG_ACTION_PRESERVE);
    CHECK("full uuid", !strcmp(cfg.uuid, "5e3f1a2b-0000-4000-8000-00000000abcd"));
    CHECK("full lists", cfg.n_disks == 2 && cfg.n_vifs == 0 &&
                            !strcmp(cfg.disks[0], "format=raw, vdev=xvda, access=rw, "
                                                  "target=/d.img") &&
                            !strcmp(cfg.disks[1], "/e.img,raw,xvdb,r"));
}

static void test_cmdline_building(void)
{
    parse("name='a'\nkernel='/k'\nroot='/dev/xvda1 ro'\nextra='console=hvc0'\n");
    CHECK("root+extra", !strcmp(cfg.cmdline, "root=/dev/xvda1 ro console=hvc0"));
    parse("name='a'\nkernel='/k'\nextra='console=hvc0'\n");
    CHECK("extra only", !strcmp(cfg.cmdline, "console=hvc0"));
    parse("name='a'\nkernel='/k'\nroot='/dev/xvda'\n");
    CHECK("root only", !strcmp(cfg.cmdline, "root=/dev/xvda"));
    parse("name='a'\nkernel='/k'\nroot='/dev/xvda'\nextra='x'\ncmdline='c=1'\n");
    CHECK("cmdline wins", !strcmp(cfg.cmdline, "c=1"));
}

static void test_append(void)
{
    int rc = parse("name='a'\nkernel='/k'\nextra='console=hvc0'\nextra += ' quiet'\n"
                   "disk=['a']\ndisk += ['b', 'c']\nvif += ['v']\ncmdline += 'x=1'\n");
    CHECK("+= parses", rc == 0);
    CHECK("+= concatenates strings and extends lists",
          rc == 0 && !strcmp(cfg.cmdline, "x=1") && cfg.n_disks == 3 &&
              !strcmp(cfg.disks[0], "a") && !strcmp(cfg.disks[2], "c") &&
              cfg.n_vifs == 1 && !strcmp(cfg.vifs[0], "v"));
    rc = parse("name='a'\nkernel='/k'\nextra='a'\nextra+='b'\nextra+='c'\n");
    CHECK("+= twice", rc == 0 && !strcmp(cfg.cmdline, "abc"));
    expect_error("error += list onto string", "extra='a'\nextra += ['b']\n",
                 "t.cfg:2: extra: '+=' mixes a list and a single value");
    expect_error("error += makes too many disks",
                 "disk=['1','2','3','4','5','6','7','8','9']\n"
                 "disk+=['1','2','3','4','5','6','7','8','9']\n",
                 "disk: too many entries");
}

static void test_strings(void)
{
    int rc = parse("name='a'\nkernel=\"/k\\\\x \\\"q\\\" \\x41\\101\\t\"\n");
    CHECK("escapes", rc == 0 && !strcmp(cfg.kernel, "/k\\x \"q\" AA\t"));
    rc = parse("name=\"a\" kernel=\"/k\"\n");
    CHECK("two values on a line rejected", rc == -EINVAL);
    rc = parse("name='a'\r\nkernel='/k'\r\n");
    CHECK("CRLF line ends", rc == 0 && !strcmp(cfg.kernel, "/k"));
    rc = parse("name='a'\nkernel='/k'");
    CHECK("no final newline", rc == 0);
    rc = parse("name='a'\nkernel = \\\n '/k'\n");
    CHECK("line continuation", rc == 0 && !strcmp(cfg.kernel, "/k"));
    rc = parse("name='a'\nkernel='/k'\nmemory=\"64\"\n");
    CHECK("number as string accepted as xl does", rc == 0 && cfg.memory_mb == 64);
}

static void test_errors(void)
{
    expect_error("error missing name", "kernel='/k'\n",
                 "t.cfg:2: missing required key 'name'");
    expect_error("error missing kernel", "name='a'\n", "missing required key 'kernel'");
    expect_error("error hvm", "name='a'\nkernel='/k'\ntype='hvm'\n",
                 "t.cfg:3: type 'hvm' is not supported yet");
    expect_error("error builder hvm", "name='a'\nkernel='/k'\nbuilder='hvm'\n",
                 "t.cfg:3: builder 'hvm' is not supported yet");
    expect_error("error bad builder", "builder='x'\n", "builder 'x' is not valid");
    expect_error("error pci", "name='a'\nkernel='/k'\npci=['0000:00:1f.2']\n",
                 "t.cfg:3: pci is not supported yet");
    expect_error("error vfb", "vfb=['vnc=1']\n", "t.cfg:1: vfb is not supported yet");
    expect_error("error nestedhvm", "nestedhvm=1\n", "nestedhvm is not supported yet");
    expect_error("error pci +=", "pci=[]\npci+=['0000:00:02.0']\n",
                 "t.cfg:2: pci is not supported yet");
    expect_error("error bootloader", "bootloader='pygrub'\n",
                 "t.cfg:1: bootloader is not supported: give kernel");
    expect_error("error bad type", "type=\"xyz\"\n", "type 'xyz' is not valid");
    expect_error("error vcpus 0", "name='a'\nkernel='/k'\nvcpus=0\n",
                 "t.cfg:3: vcpus: 0 is out of range");
    expect_error("error vcpus 129", "vcpus=129\n", "vcpus: 129 is out of range (1..128)");
    expect_error("error maxvcpus < vcpus", "name='a'\nkernel='/k'\nvcpus=4\nmaxvcpus=2\n",
                 "more than maxvcpus");
    expect_error("error memory 16", "name='a'\nkernel='/k'\nmemory=16\n",
                 "t.cfg:3: memory: 16 MiB is out of range");
    expect_error("error memory absurd", "name='a'\nkernel='/k'\nmemory=99999999999\n",
                 "memory: 99999999999 MiB is out of range");
    expect_error("error memory overflow", "memory=999999999999999999999999\n",
                 "out of range");
    expect_error("error maxmem < memory",
                 "name='a'\nkernel='/k'\nmemory=256\nmaxmem=128\n",
                 "maxmem: 128 MiB must be between");
    expect_error("error memory not a number", "memory='lots'\n",
                 "t.cfg:1: memory: expected a number, got 'lots'");
    expect_error("error negative memory", "memory=-5\n", "memory: expected a number");
    expect_error("error memory list", "memory=[1]\n",
                 "memory: expected a number, got a list");
    expect_error("error name list", "name=['a']\n",
                 "name: expected a string, got a list");
    expect_error("error disk not list", "disk='/x.img'\n", "disk: expected a [ list ]");
    expect_error("error too many vifs", "vif=['1','2','3','4','5','6','7','8','9']\n",
                 "vif: too many entries");
    expect_error("error bad name", "name='a b'\n", "name 'a b' is not valid");
    expect_error("error numeric name", "name='123'\n", "name '123' is not valid");
    expect_error("error empty name", "name=''\n", "name '' is not valid");
    expect_error("error empty kernel", "kernel=''\n", "kernel: empty path");
    expect_error("error action", "on_crash='explode'\n", "on_crash: invalid action");
    expect_error("error rename-restart", "on_reboot='rename-restart'\n",
                 "on_reboot: action 'rename-restart' is not supported");
    expect_error("error coredump-destroy", "on_crash='coredump-destroy'\n",
                 "action 'coredump-destroy' is not supported");
    expect_error("error coredump-restart", "on_crash='coredump-restart'\n",
                 "action 'coredump-restart' is not supported");
    expect_error("error uuid", "uuid='not-a-uuid'\n",
                 "uuid: 'not-a-uuid' is not a valid UUID");
    expect_error("error missing =", "name 'a'\n", "t.cfg:1: syntax error: expected '='");
    expect_error("error missing value", "name =\n", "expected a value");
    expect_error("error stray char", "name='a'\n@\n",
                 "t.cfg:2: syntax error: unexpected character '@'");
    expect_error("error value at line start", "'a' = 1\n", "expected 'KEY = VALUE'");
    expect_error("error unterminated string", "name='a'\nkernel=\"/k\n",
                 "t.cfg:2: unterminated string");
    expect_error("error unterminated list", "disk=['a',\n'b'\n",
                 "t.cfg:1: unterminated list");
    expect_error("error list syntax", "disk=['a' 'b']\n", "syntax error in list");
    expect_error("error list double comma", "disk=['a',,'b']\n", "syntax error in list");
    expect_error("error bad escape", "name='a\\q'\n", "invalid escape sequence");
    expect_error("error NUL escape", "name='a\\0b'\n", "NUL or out of range");
    expect_error("error NUL hex escape", "name='a\\x00b'\n", "NUL or out of range");
    expect_error(
        "error long name",
        "name='aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'"
        "\n",
        "name: value too long");
}

static void test_hostile(void)
{
    size_t big = 1 << 20;
    char *s = malloc(big + 64);
    int rc;

    /* One huge string value. */
    strcpy(s, "kernel='");
    memset(s + 8, 'k', big);
    strcpy(s + 8 + big, "'\n");
    CHECK("huge string rejected", parse(s) == -EINVAL && strstr(err, "value too long"));
    /* One huge unterminated string. */
    s[8 + big] = '\0';
    CHECK("huge unterminated string", parse(s) == -EINVAL && strstr(err, "too long"));
    /* A huge identifier. */
    memset(s, 'a', big);
    strcpy(s + big, " = 1\n");
    CHECK("huge key rejected", parse(s) == -EINVAL);
    /* Deep brackets. */
    memset(s, '[', big);
    s[big] = '\0';
    memcpy(s, "disk=", 5);
    CHECK("deep brackets rejected", parse(s) == -EINVAL && strstr(err, "nested lists"));
    /* A huge list. */
    strcpy(s, "disk=[");
    for (size_t off = 6; off + 8 < big; off += 4)
        memcpy(s + off, "'a',", 4), s[off + 4] = '\0';
    CHECK("huge list rejected", parse(s) == -EINVAL && strstr(err, "too many items"));
    /* Many lines: line numbers count correctly. */
    memset(s, '\n', 100000);
    strcpy(s + 100000, "pci=['0000:00:1f.2']\n");
    rc = parse(s);
    CHECK("line numbers", rc == -EINVAL && strstr(err, "t.cfg:100001: pci is not"));
    /* Many unknown keys: all counted, the first XLCFG_MAX_WARNINGS kept. */
    strcpy(s, "name='a'\nkernel='/k'\ntype='pvh'\n");
    for (int i = 0; i < 1000; i++)
        sprintf(s + strlen(s), "k%d=%d\n", i, i);
    rc = parse(s);
    CHECK(
        "1000 unknown keys: 1000 warnings, 32 kept",
        rc == 0 && cfg.n_warnings == 1000 &&
            strstr(cfg.warnings[XLCFG_MAX_WARNINGS - 1], "t.cfg:35: ignoring key 'k31'"));
    /* Binary junk. */
    for (size_t i = 0; i < 4096; i++)
        s[i] = (char)(1 + (i * 131) % 255);
    s[4096] = '\0';
    CHECK("binary junk rejected", parse(s) == -EINVAL && strstr(err, "t.cfg:"));
    CHECK("empty text",
          parse("") == -EINVAL && strstr(err, "missing required key 'name'"));
    free(s);
}

static void test_file(void)
{
    char path[] = "/tmp/test_xlcfg_XXXXXX";
    int fd = mkstemp(path);
    static const char text[] = "name='f'\nkernel='/k'\n#x\0y\n";
    int rc;

    if (fd < 0 || write(fd, text, sizeof(text) - 1) != (ssize_t)(sizeof(text) - 1)) {
        CHECK("temp file", 0);
        return;
    }
    close(fd);
    rc = xlcfg_parse_file(path, &cfg, err, sizeof(err));
    CHECK("file with NUL byte rejected", rc == -EINVAL && strstr(err, ":3: NUL byte"));
    fd = open(path, O_WRONLY | O_TRUNC);
    if (write(fd, text, 21) != 21)
        CHECK("temp file rewrite", 0);
    close(fd);
    rc = xlcfg_parse_file(path, &cfg, err, sizeof(err));
    CHECK("file parses", rc == 0 && !strcmp(cfg.name, "f"));
    unlink(path);
    rc = xlcfg_parse_file(path, &cfg, err, sizeof(err));
    CHECK("missing file", rc == -ENOENT && strstr(err, "No such file"));
    CHECK("action names", !strcmp(xlcfg_action_name(XLCFG_ACTION_PRESERVE), "preserve"));
}

/* Warnings as "t.cfg:<line>: ..." in order; n expected. */
static bool has_warning(unsigned i, const char *want)
{
    bool ok =
        i < cfg.n_warnings && i < XLCFG_MAX_WARNINGS && strstr(cfg.warnings[i], want);
    if (!ok)
        fprintf(stderr, "  warning %u: '%s', want '%s'\n", i,
                i < cfg.n_warnings && i < XLCFG_MAX_WARNINGS ? cfg.warnings[i] : "(none)",
                want);
    return ok;
}

static void test_foreign_keys(void)
{
    int rc = parse("name='a'\nkernel='/k'\ntype='pvh'\npool='Pool-0'\n"
                   "vnc=1\ncolour = \"blue\"\npci=[]\nusb=0\nvfb=[ ]\nmemory=256\n"
                   "on_watchdog='destroy'\nseclabel+='x'\n");

    CHECK("foreign keys: parses, values kept", rc == 0 && cfg.memory_mb == 256);
    CHECK("foreign keys: one warning per ignored key, in order, with its line",
          cfg.n_warnings == 8 && has_warning(0, "t.cfg:4: ignoring key 'pool'") &&
              has_warning(1, "t.cfg:5: ignoring key 'vnc'") &&
              has_warning(2, "t.cfg:6: ignoring key 'colour'") &&
              has_warning(3, "t.cfg:7: ignoring key 'pci'") &&
              has_warning(4, "t.cfg:8: ignoring key 'usb'") &&
              has_warning(5, "t.cfg:9: ignoring key 'vfb'") &&
              has_warning(6, "t.cfg:11: ignoring key 'on_watchdog'") &&
              has_warning(7, "t.cfg:12: ignoring key 'seclabel'"));
    rc = parse("name='a'\nkernel='/k'\n");
    CHECK("no type: PVH with a note",
          rc == 0 && !strcmp(cfg.type, "pvh") && cfg.n_warnings == 1 &&
              has_warning(0, "t.cfg: no 'type' given: booting as PVH"));
    rc = parse("name='a'\nkernel='/k'\ntype='pv'\n");
    CHECK("type pv: PVH with a warning",
          rc == 0 && !strcmp(cfg.type, "pvh") && cfg.n_warnings == 1 &&
              has_warning(0, "t.cfg:3: type 'pv': Domus has no PV mode"));
    rc = parse("name='a'\nkernel='/k'\nbuilder='generic'\n");
    CHECK("builder generic: PVH with a warning",
          rc == 0 && cfg.n_warnings == 1 && has_warning(0, "t.cfg:3: builder"));
    rc = parse("name='a'\nkernel='/k'\ntype='pvh'\nbuilder='generic'\n");
    CHECK("type pvh wins over builder", rc == 0 && cfg.n_warnings == 0);
}

/* text with every from replaced by to (at most 8 times longer: test input). */
static char *replace(const char *text, const char *from, const char *to)
{
    size_t n = 0, fl = strlen(from);
    char *out = malloc(strlen(text) * 8 + strlen(to) * 8 + 1);

    for (const char *p = text; *p;) {
        if (!strncmp(p, from, fl)) {
            n += (size_t)sprintf(out + n, "%s", to);
            p += fl;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    return out;
}

/* Debian's example configs (xen-utils-common) with only the kernel and disk
 * paths changed, as a user moving from a Xen host would. */
static void test_xlexample(const char *file, const char *disk_path, const char *name,
                           unsigned mem, unsigned vcpus, const char *type_warning)
{
    char label[1400], *text = NULL, *t1, *t2;
    struct xldisk *dk = malloc(sizeof(*dk));
    struct xlvif vif;
    FILE *f = fopen(file, "re");
    size_t len = 0;
    int rc;

    snprintf(label, sizeof(label), "%s readable (package xen-utils-common)", file);
    CHECK(label, f != NULL);
    if (!f) {
        free(dk);
        return;
    }
    text = calloc(1, 65536);
    len = fread(text, 1, 65535, f);
    fclose(f);
    t1 = replace(text, "\"/boot/vmlinuz\"", "\"/var/lib/domus/vmlinuz\"");
    t2 = replace(t1, disk_path, "/srv/guests/a.img");
    rc = xlcfg_parse_string(t2, file, &cfg, err, sizeof(err));
    snprintf(label, sizeof(label), "%s parses (%zu bytes): %s", file, len,
             rc ? err : "ok");
    CHECK(label, rc == 0);
    snprintf(label, sizeof(label), "%s: values", file);
    CHECK(label, rc == 0 && !strcmp(cfg.name, name) && !strcmp(cfg.type, "pvh") &&
                     !strcmp(cfg.kernel, "/var/lib/domus/vmlinuz") &&
                     !strcmp(cfg.cmdline, "root=/dev/xvda1") && cfg.memory_mb == mem &&
                     cfg.vcpus == vcpus && cfg.n_disks == 1 && cfg.n_vifs == 1);
    snprintf(label, sizeof(label), "%s: %u warning(s)%s%s", file, cfg.n_warnings,
             cfg.n_warnings ? ": " : "", cfg.n_warnings ? cfg.warnings[0] : "");
    CHECK(label, type_warning ? cfg.n_warnings == 1 && has_warning(0, type_warning)
                              : cfg.n_warnings == 0);
    snprintf(label, sizeof(label), "%s: disk and vif specs accepted", file);
    CHECK(label, rc == 0 && dk &&
                     xldisk_parse(cfg.disks[0], 0, dk, err, sizeof(err)) == 0 &&
                     !strcmp(dk->target, "/srv/guests/a.img") &&
                     xlvif_parse(cfg.vifs[0], 0, NULL, &vif, err, sizeof(err)) == 0);
    free(dk);
    free(text);
    free(t1);
    free(t2);
}

int main(void)
{
    test_minimal();
    test_full();
    test_cmdline_building();
    test_strings();
    test_append();
    test_errors();
    test_hostile();
    test_file();
    test_foreign_keys();
    test_xlexample("/etc/xen/xlexample.pvhlinux", "/dev/zvol/tank/guest-volume",
                   "example.pvhlinux", 512, 4, NULL);
    test_xlexample("/etc/xen/xlexample.pvlinux", "/dev/vg/guest-volume",
                   "example.pvlinux", 128, 2, "no 'type' given: booting as PVH");
    if (failures)
        printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
