/* The toolstack: what the CLI (domus) and the Domain 0 control plane (domusd)
 * share.
 *
 * Wire protocol: a unix stream socket $DOMUS_RUN_DIR/domusd.sock; each request
 * and each reply is one JSON object on one line.  A request has "cmd" and its
 * arguments; a reply has "ok" (bool) and either the results or "error" (a
 * one-line human-readable message).  Requests:
 *   {"cmd":"create","path":P,"text":CFG,"cwd":DIR} -> {"ok":true,"domid":N,"name":S,
 *                                                       "warnings":[S, ...]}
 *        replies once the domain is built and running (or failed to build);
 *        relative kernel/ramdisk paths are taken from the client's cwd
 *   {"cmd":"list"} -> {"ok":true,"domains":[{"domid","name","mem_mib","vcpus",
 *                     "state":"-b----","cpu_time":SECONDS,"gen":N}, ...]}
 *        Domain-0 (the host) first
 *   {"cmd":"destroy"|"shutdown"|"reboot"|"pause"|"unpause","dom":D} -> {"ok":true}
 *        destroy replies once the domain is gone
 *   {"cmd":"console-path","dom":D} -> {"ok":true,"path":SOCK,"domid":N}
 *   {"cmd":"domid","dom":D} -> {"ok":true,"domid":N,"name":S,"state":..,"gen":N}
 *   {"cmd":"sched-credit","dom":D?,"weight":N?,"cap":N?} -> with weight or cap
 *        (and dom): sets them, {"ok":true}; else {"ok":true,"domains":[{"name",
 *        "domid","weight","cap"}, ...]} (Domain-0 first, 256 and 0)
 *   {"cmd":"vcpu-list","dom":D?} -> {"ok":true,"vcpus":[{"name","domid","vcpu",
 *        "cpu","state":"r--"|"-b-"|..p,"time":SECONDS,"tid","hard","soft"}, ...]}
 *   {"cmd":"vcpu-pin","dom":D,"vcpu":"all"|"N","hard":LIST|"-","soft":LIST|"-"?}
 *        -> {"ok":true}; LIST an xl cpu list (sched.h)
 * D is a domain name or a domid in decimal.  "gen" counts (re)starts of a
 * domain under the same domid.
 *
 * Files of domusd in $DOMUS_RUN_DIR: domusd.sock, domusd.pid, domusd.lock;
 * per domain N (removed with it): domN.console and domN.control (domus-vm's
 * sockets, vmproc.h), domN.json (what a restarted domusd needs to adopt the
 * still-running domain); xenstored/socket and xenstored.pid when domusd
 * started domus-xenstored.  In $DOMUS_LOG_DIR: domusd.log, <name>.log (the
 * console log, kept, the previous one as <name>.log.1), domus-vm-<name>.log
 * (domus-vm's stderr). */
#ifndef DOMUS_TOOLSTACK_H
#define DOMUS_TOOLSTACK_H

#include "domus/xlcfg.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DOMUS_RUN_DIR_DEFAULT "/run/domus"
#define DOMUS_LOG_DIR_DEFAULT "/var/log/domus"
#define DOMUSD_SOCK_NAME "domusd.sock"
#define DOMUS_REQ_MAX (4u << 20) /* longest request or reply line */
#define DOMUS_VERSION "0.1"

/* $DOMUS_RUN_DIR or the default; $DOMUS_LOG_DIR or the default. */
const char *ts_run_dir(void);
const char *ts_log_dir(void);

/* Path of the daemon's socket; -ENAMETOOLONG when it does not fit a sockaddr_un. */
int ts_sock_path(char *buf, size_t len);

/* Directory holding the running executable (readlink /proc/self/exe). */
int ts_self_dir(char *buf, size_t len);

/* Creates dir and its parents (mode 0755); 0 or -errno. */
int ts_mkdir_p(const char *dir);
/* The same, the last directory (when created) with mode. */
int ts_mkdir_mode(const char *dir, mode_t mode);

/* Writes obj as one line to fd, waiting at most timeout_ms for room each time
 * the socket is full (-1: forever).  0 or -errno. */
int ts_send_json(int fd, json_object *obj, int timeout_ms);

/* One line from fd into buf (NUL-terminated, newline removed), read a byte
 * at a time so that what follows it stays in fd (the migration handshake's
 * lines, then the stream), waiting at most timeout_ms in all.  0,
 * -ETIMEDOUT, -EPIPE (closed first) or -errno. */
int ts_read_line_bytewise(int fd, char *buf, size_t len, int timeout_ms);

/* Connects a unix stream socket to path without ever blocking (-EAGAIN when
 * the listener's backlog is full); 0 or -errno.  *out gets a blocking,
 * close-on-exec fd. */
int ts_unix_connect(const char *path, int *out);

/* Blocking read of one line (without its '\n') from fd into a malloc'd string,
 * at most max bytes; waits at most timeout_ms in total (-1: forever).
 * -ETIMEDOUT, -EPIPE on EOF before a full line, -E2BIG. */
int ts_read_line(int fd, char **line, size_t max, int timeout_ms);

/* Host facts for the memory check and for Domain-0's row. */
struct ts_hostinfo {
    uint64_t mem_total_mib;
    uint64_t mem_available_mib;
    unsigned cpus;
    double busy_seconds; /* non-idle CPU time of the whole host */
};
int ts_hostinfo(struct ts_hostinfo *hi);

/* The wall clock, seconds since the epoch (CLOCK_REALTIME). */
double ts_wall_s(void);

/* xl list -l's object for one domain, libxl_domain_config's JSON:
 * {"domid":N,"config":{"c_info":{type,name,uuid},"b_info":{max_vcpus,
 * avail_vcpus,max_memkb,target_memkb,kernel,cmdline,ramdisk,"type.pvh"},
 * "disks":[{pdev_path,vdev,backend,format,readwrite}],"nics":[{devid,mac,
 * bridge,...,nictype}],on_poweroff,on_reboot,on_crash}} (ts_views.c). */
json_object *ts_domain_config_json(const struct xlcfg *cfg, unsigned domid);

/* xl uptime's form of secs: "[D day(s), ]HH:MM:SS", short_mode without :SS. */
void ts_uptime_string(unsigned long secs, bool short_mode, char *buf, size_t len);

/* xl info's "key : value" pairs that apply to Domus, in xl's order, as a
 * JSON array of [key, value] string pairs, from this host (uname, /proc,
 * /sys, sysconf, CPUID) and what domus-vm tells guests (XENVER_*);
 * free_mib is the memory left for new domains (ts_xlinfo.c). */
json_object *ts_xlinfo(uint64_t free_mib);

/* Parses "/proc/meminfo"-style text: value in KiB of key ("MemTotal"), or -ENOENT. */
int ts_meminfo_value(const char *text, const char *key, uint64_t *kib);

#endif
