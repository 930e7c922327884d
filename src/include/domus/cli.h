/* The domus CLI: a thin client of domusd.  Subcommands return an exit status
 * (0 ok, 1 failure, 2 usage error, as xl). */
#ifndef DOMUS_CLI_H
#define DOMUS_CLI_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CLI_EXIT_USAGE 2

/* xl's global -v (cli_main): subcommands say more (create: its phases).
 * cli_t0: when the command started (CLOCK_REALTIME ns). */
extern int cli_verbose;
extern uint64_t cli_t0;

/* A phase of an operation, from one named instant to the next. */
struct cli_phase {
    const char *label, *from, *to;
};
/* N of "key=N" among space-separated words; 0 when absent. */
uint64_t cli_instant(const char *words, const char *key);
/* "title (ms): label D, label D, ...\n" to f, each D from get(ctx, key)'s
 * instants (ns), '?' where one is 0. */
void cli_print_phases(FILE *f, const char *title, const struct cli_phase *p, size_t n,
                      uint64_t (*get)(void *ctx, const char *key), void *ctx);

/* Sends req (consumed) to domusd, starting it when its socket is absent, and
 * returns the reply in *reply (the caller puts it).  Prints the failure and
 * returns non-zero when the daemon cannot be reached or replies with an error
 * (the daemon's message is printed as is). */
int cli_request(json_object *req, json_object **reply);

/* cli_request sending nfds descriptors with req (SCM_RIGHTS) and printing
 * nothing: 0 with the reply object in *reply, whether ok or not (the caller
 * puts it), or -errno with err set. */
int cli_call_fds(json_object *req, const int *fds, unsigned nfds, json_object **reply,
                 char *err, size_t errlen);

/* cli_call_fds in two steps: the request (consumed) sent on a new
 * connection (*conn), and later its reply read and the connection closed. */
int cli_send_fds(json_object *req, const int *fds, unsigned nfds, int *conn, char *err,
                 size_t errlen);
int cli_recv_reply(int conn, json_object **reply, char *err, size_t errlen);

/* {"cmd":cmd,"dom":dom} */
json_object *cli_dom_req(const char *cmd, const char *dom);

/* Members of a reply object: key's string ("" when absent), key's number
 * (-1 when absent). */
const char *cli_jstr(json_object *o, const char *key);
long long cli_jnum(json_object *o, const char *key);

/* Prints each of reply's "warnings" to stderr as "warning: ...". */
void cli_print_warnings(json_object *reply);

/* Attaches to the console socket path (see console in cli_console.c). */
int cli_console_attach(const char *path);

/* A config file's text (malloc'd, at most 1 MiB); 1 after printing why. */
int cli_read_cfg(const char *path, char **text, size_t *len);
/* The config file's path and text into req ("cfg_path", "cfg_text"); 1
 * after printing why it cannot be read. */
int cli_req_add_cfg(json_object *req, const char *path);
/* Attaches to domain dom's console. */
int cli_console_of(const char *dom);

int cli_create(int argc, char **argv);
/* Save and restore (cli_save.c). */
int cli_save(int argc, char **argv);
int cli_restore(int argc, char **argv);
/* Live migration (cli_migrate.c, docs/migration.md). */
int cli_migrate(int argc, char **argv);
int cli_migrate_receive(int argc, char **argv);
int cli_list(int argc, char **argv);
int cli_uptime(int argc, char **argv);
int cli_info(int argc, char **argv);
int cli_console(int argc, char **argv);
int cli_shutdown(int argc, char **argv);
int cli_reboot(int argc, char **argv);
int cli_destroy(int argc, char **argv);
int cli_pause(int argc, char **argv);
int cli_unpause(int argc, char **argv);
int cli_domid(int argc, char **argv);
int cli_domname(int argc, char **argv);
int cli_help(int argc, char **argv);
/* Hot-plug (cli_hotplug.c). */
int cli_block_attach(int argc, char **argv);
int cli_block_detach(int argc, char **argv);
int cli_block_list(int argc, char **argv);
int cli_network_attach(int argc, char **argv);
int cli_network_detach(int argc, char **argv);
int cli_network_list(int argc, char **argv);

/* Scheduling (cli_sched.c). */
int cli_sched_credit(int argc, char **argv);
int cli_sched_credit2(int argc, char **argv);
int cli_vcpu_list(int argc, char **argv);
int cli_vcpu_pin(int argc, char **argv);
/* vCPU hot-plug (cli_vcpu.c) and xentop's view (cli_top.c). */
int cli_vcpu_set(int argc, char **argv);
int cli_top(int argc, char **argv);

/* Memory (cli_mem.c): xl's sizes, "<n>[bBkKmMgGtT]" (no suffix: MiB), in
 * KiB; -1 when malformed or too large. */
long long cli_parse_mem_kb(const char *s);
int cli_mem_set(int argc, char **argv);
int cli_mem_max(int argc, char **argv);

/* Runs "domus <argv[1]> ..." through the subcommand table; the exit status. */
int cli_main(int argc, char **argv);

/* Prints the usage line of a subcommand (from the table in domus_main.c). */
void cli_usage(const char *cmd);

/* cli_usage, then CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd);

#endif
