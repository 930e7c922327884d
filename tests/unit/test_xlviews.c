/* Unit tests of xl's views: list -l's JSON (libxl_domain_config), uptime's
 * form, info's keys, generated UUIDs. */
#include "domus/toolstack.h"
#include "domus/xlcfg.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "check.h"

static json_object *path(json_object *o, const char *a, const char *b, const char *c)
{
    const char *keys[] = {a, b, c};
    for (int i = 0; i < 3 && keys[i] && o; i++) {
        if (!json_object_object_get_ex(o, keys[i], &o))
            return NULL;
    }
    return o;
}

static const char *str_at(json_object *o, const char *a, const char *b, const char *c)
{
    json_object *v = path(o, a, b, c);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
}

static int64_t int_at(json_object *o, const char *a, const char *b, const char *c)
{
    json_object *v = path(o, a, b, c);
    return v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
}

static void test_config_json(void)
{
    static struct xlcfg cfg;
    char err[512];
    const char *text =
        "name='web'\ntype='pvh'\nkernel='/k'\nramdisk='/r'\nextra='console=hvc0'\n"
        "root='/dev/xvda1 ro'\nmemory=256\nmaxmem=512\nvcpus=2\nmaxvcpus=4\n"
        "uuid='5e3f1a2b-0000-4000-8000-00000000abcd'\non_crash='preserve'\n"
        "disk=['/srv/a.img,raw,xvda,rw', 'phy:/dev/vg/b,xvdb,r']\n"
        "vif=['mac=00:16:3e:01:02:03,bridge=xenbr0']\n";
    int rc = xlcfg_parse_string(text, "t.cfg", &cfg, err, sizeof(err));
    json_object *o, *back, *d1, *cfgo, *av;
    const char *s;

    CHECK("config: parses", rc == 0);
    o = ts_domain_config_json(&cfg, 7);
    s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
    back = json_tokener_parse(s); /* what domus list -l prints parses back */
    CHECK("config: valid JSON", back != NULL);
    cfgo = path(back, "config", NULL, NULL);
    CHECK("config: domid and c_info",
          int_at(back, "domid", NULL, NULL) == 7 &&
              !strcmp(str_at(cfgo, "c_info", "type", NULL), "pvh") &&
              !strcmp(str_at(cfgo, "c_info", "name", NULL), "web") &&
              !strcmp(str_at(cfgo, "c_info", "uuid", NULL),
                      "5e3f1a2b-0000-4000-8000-00000000abcd"));
    av = path(cfgo, "b_info", "avail_vcpus", NULL);
    CHECK("config: b_info",
          int_at(cfgo, "b_info", "max_vcpus", NULL) == 4 && av &&
              json_object_array_length(av) == 2 &&
              int_at(cfgo, "b_info", "max_memkb", NULL) == 512 * 1024 &&
              int_at(cfgo, "b_info", "target_memkb", NULL) == 256 * 1024 &&
              !strcmp(str_at(cfgo, "b_info", "kernel", NULL), "/k") &&
              !strcmp(str_at(cfgo, "b_info", "ramdisk", NULL), "/r") &&
              !strcmp(str_at(cfgo, "b_info", "cmdline", NULL),
                      "root=/dev/xvda1 ro console=hvc0") &&
              path(cfgo, "b_info", "type.pvh", NULL));
    d1 = json_object_array_get_idx(path(cfgo, "disks", NULL, NULL), 1);
    CHECK("config: disks",
          json_object_array_length(path(cfgo, "disks", NULL, NULL)) == 2 &&
              !strcmp(str_at(d1, "pdev_path", NULL, NULL), "/dev/vg/b") &&
              !strcmp(str_at(d1, "vdev", NULL, NULL), "xvdb") &&
              !strcmp(str_at(d1, "backend", NULL, NULL), "phy") &&
              int_at(d1, "readwrite", NULL, NULL) == 0);
    d1 = json_object_array_get_idx(path(cfgo, "nics", NULL, NULL), 0);
    CHECK("config: nics", !strcmp(str_at(d1, "mac", NULL, NULL), "00:16:3e:01:02:03") &&
                              !strcmp(str_at(d1, "bridge", NULL, NULL), "xenbr0") &&
                              int_at(d1, "devid", NULL, NULL) == 0 &&
                              !strcmp(str_at(d1, "nictype", NULL, NULL), "vif"));
    CHECK("config: actions",
          !strcmp(str_at(cfgo, "on_crash", NULL, NULL), "preserve") &&
              !strcmp(str_at(cfgo, "on_reboot", NULL, NULL), "restart"));
    json_object_put(back);
    json_object_put(o);
}

static bool uptime_is(unsigned long secs, bool short_mode, const char *want)
{
    char buf[64];
    ts_uptime_string(secs, short_mode, buf, sizeof(buf));
    if (strcmp(buf, want))
        fprintf(stderr, "  uptime %lu: '%s', want '%s'\n", secs, buf, want);
    return !strcmp(buf, want);
}

static void test_uptime(void)
{
    CHECK("uptime: xl's forms",
          uptime_is(0, false, " 0:00:00") && uptime_is(3725, false, " 1:02:05") &&
              uptime_is(86400 + 7200 + 60 + 1, false, "1 day,  2:01:01") &&
              uptime_is(3 * 86400 + 36000, false, "3 days, 10:00:00") &&
              uptime_is(3725, true, " 1:02") &&
              uptime_is(2 * 86400, true, "2 days,  0:00"));
}

static const char *info_value(json_object *arr, const char *key)
{
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *p = json_object_array_get_idx(arr, i);
        if (!strcmp(json_object_get_string(json_object_array_get_idx(p, 0)), key))
            return json_object_get_string(json_object_array_get_idx(p, 1));
    }
    return NULL;
}

static void test_info(void)
{
    static const char *const keys[] = {"host",
                                       "release",
                                       "version",
                                       "machine",
                                       "nr_cpus",
                                       "max_cpu_id",
                                       "nr_nodes",
                                       "cores_per_socket",
                                       "threads_per_core",
                                       "cpu_mhz",
                                       "hw_caps",
                                       "virt_caps",
                                       "total_memory",
                                       "free_memory",
                                       "free_cpus",
                                       "xen_major",
                                       "xen_minor",
                                       "xen_extra",
                                       "xen_version",
                                       "xen_caps",
                                       "xen_scheduler",
                                       "xen_pagesize",
                                       "platform_params",
                                       "xen_changeset",
                                       "xen_commandline",
                                       "cc_compiler",
                                       "cc_compile_by",
                                       "cc_compile_domain",
                                       "cc_compile_date",
                                       "build_id",
                                       "xend_config_format"};
    json_object *arr = ts_xlinfo(1234);
    struct utsname u;
    bool order = json_object_array_length(arr) == sizeof(keys) / sizeof(keys[0]);
    char want[32];
    const char *v;

    for (size_t i = 0; order && i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_object *p = json_object_array_get_idx(arr, i);
        order = !strcmp(json_object_get_string(json_object_array_get_idx(p, 0)), keys[i]);
    }
    CHECK("info: xl's keys in xl's order", order);
    uname(&u);
    CHECK("info: host and release from uname",
          !strcmp(info_value(arr, "host"), u.nodename) &&
              !strcmp(info_value(arr, "release"), u.release));
    snprintf(want, sizeof(want), "%ld", sysconf(_SC_NPROCESSORS_ONLN));
    CHECK("info: nr_cpus from sysconf", !strcmp(info_value(arr, "nr_cpus"), want));
    CHECK("info: free_memory as given", !strcmp(info_value(arr, "free_memory"), "1234"));
    v = info_value(arr, "hw_caps");
    CHECK("info: hw_caps is 8 hex words with the FPU bit (CPUID 1.edx bit 0)",
          strlen(v) == 71 && v[8] == ':' && (strtoul(v, NULL, 16) & 1));
    CHECK("info: total_memory > 0 and xen_version 4.17",
          strtoul(info_value(arr, "total_memory"), NULL, 10) > 0 &&
              !strncmp(info_value(arr, "xen_version"), "4.17", 4));
    v = info_value(arr, "build_id");
    CHECK("info: build_id read from the ELF note (40 hex digits)",
          strlen(v) == 40 && strspn(v, "0123456789abcdef") == 40);
    json_object_put(arr);
}

static void test_uuid(void)
{
    char a[XLCFG_UUID_LEN + 1], b[XLCFG_UUID_LEN + 1];
    bool form = xlcfg_uuid_generate(a) == 0 && xlcfg_uuid_generate(b) == 0 &&
                strlen(a) == XLCFG_UUID_LEN;

    for (int i = 0; form && i < XLCFG_UUID_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        form = dash ? a[i] == '-' : isxdigit((unsigned char)a[i]) && !isupper(a[i]);
    }
    CHECK("uuid: canonical lower-case form", form);
    CHECK("uuid: version 4, RFC 4122 variant", a[14] == '4' && strchr("89ab", a[19]));
    CHECK("uuid: two differ", strcmp(a, b) != 0);
}

int main(void)
{
    test_config_json();
    test_uptime();
    test_info();
    test_uuid();
    if (failures)
        printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
