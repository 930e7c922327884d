/* domus: the table of subcommands (like xl's cmd_table) and the dispatcher. */
#include "domus/cli.h"
#include "domus/toolstack.h"
#include "domus/util.h"

#include <stdio.h>
#include <string.h>

struct cli_cmd {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
    const char *usage;
};

static const struct cli_cmd cmds[] = {
    {"create", cli_create, "Create a domain from a config file",
     "[-c] [-n] <ConfigFile> [KEY=VALUE ...]\n"
     "  -c  attach to the console once the domain runs\n"
     "  -n  dry run: parse the config and print it, create nothing\n"
     "  KEY=VALUE  extra config lines, appended to the file's"},
    {"save", cli_save, "Save a domain state to restore later",
     "[-c] [-p] <Domain> <CheckpointFile> [<ConfigFile>]\n"
     "  -c  leave the domain running after creating the snapshot\n"
     "  -p  leave the domain paused after creating the snapshot\n"
     "  ConfigFile: the configuration to store instead of the domain's"},
    {"restore", cli_restore, "Restore a domain from a saved state",
     "[-p] [-e] [-c] [--lazy] [<ConfigFile>] <CheckpointFile>\n"
     "  -p  do not unpause the domain after restoring it\n"
     "  --lazy  run the guest before its memory is read: pages come from\n"
     "      the file when first touched, the rest in the background\n"
     "  -e  do not wait in the background for the death of the domain\n"
     "      (domusd watches it either way)\n"
     "  -c  attach to the console once the domain runs\n"
     "  ConfigFile: use this configuration instead of the stored one"},
    {"migrate", cli_migrate, "Migrate a domain to another host",
     "[options] <Domain> <host>\n"
     "  -s <sshcommand>  use <sshcommand> instead of ssh: migrate runs\n"
     "                   '<sshcommand> <host> domus migrate-receive [-p]'\n"
     "  -e               do not wait in the background on <host> for the death\n"
     "                   of the domain (domusd watches it either way)\n"
     "  -C <config>      send <config> instead of the config the domain was\n"
     "                   created from\n"
     "  -p               leave the domain paused on <host> after the migration\n"
     "  --debug          print the migration protocol's steps\n"
     "  --transport tcp:<addr>:<port>  connect to a 'domus migrate-receive\n"
     "                   --listen <port>' instead of running ssh\n"
     "  --downtime <ms>  the final round's target (default 300)\n"
     "  --max-rounds <n> of dirty pages before the final round (default 30)\n"
     "  --postcopy       resume the guest on <host> after the pre-copy rounds and\n"
     "                   pull the pages left on first touch (and in the\n"
     "                   background); the source cannot take the guest back then\n"
     "  --bandwidth <MiB>  send at most <MiB> MiB a second"},
    {"migrate-receive", cli_migrate_receive,
     "Receive a migrating domain (run by migrate over ssh)",
     "[-p] [-e] [-d] [--listen <port>]\n"
     "  -p  leave the domain paused once it is here\n"
     "  -e, -d  accepted (xl's)\n"
     "  --listen <port>  take one connection on TCP <port> instead of stdin/stdout"},
    {"list", cli_list, "List information about all/some domains",
     "[-l] [-v] [Domain, ...]\n"
     "  -l  the domains' configurations, as JSON (libxl_domain_config)\n"
     "  -v  also UUID, Reason-Code and Security Label"},
    {"uptime", cli_uptime, "Print uptime for all/some domains",
     "[-s] [Domain, ...]\n  -s  short: \" HH:MM:SS up [D days, ]HH:MM, Name (ID)\""},
    {"info", cli_info, "Get information about the host (xl info's keys that apply)", ""},
    {"console", cli_console, "Attach to a domain's console (Ctrl-] detaches)",
     "<Domain>"},
    {"shutdown", cli_shutdown, "Issue a clean shutdown to a domain", "[-w] <Domain>"},
    {"reboot", cli_reboot, "Issue a clean reboot to a domain", "[-w] <Domain>"},
    {"destroy", cli_destroy, "Terminate a domain immediately", "<Domain>"},
    {"pause", cli_pause, "Pause execution of a domain", "<Domain>"},
    {"unpause", cli_unpause, "Unpause a paused domain", "<Domain>"},
    {"domid", cli_domid, "Convert a domain name to its domain id", "<DomainName>"},
    {"domname", cli_domname, "Convert a domain id to its domain name", "<DomainId>"},
    {"block-attach", cli_block_attach, "Create a new virtual block device",
     "<Domain> <disk-spec-component(s)>..."},
    {"block-detach", cli_block_detach, "Destroy a domain's virtual block device",
     "<Domain> <DevId>\n  DevId: the vdev (xvdb) or its number (51728)"},
    {"block-list", cli_block_list, "List virtual block devices for a domain",
     "<Domain(s)>"},
    {"network-attach", cli_network_attach, "Create a new network device",
     "<Domain> [vif-spec-component(s)]...\n  e.g. mac=00:16:3e:00:00:01 bridge=xenbr0"},
    {"network-detach", cli_network_detach, "Destroy a domain's network device",
     "<Domain> <DevId|mac>"},
    {"network-list", cli_network_list, "List network interfaces of a domain",
     "<Domain(s)>"},
    {"sched-credit", cli_sched_credit, "Get/set credit scheduler parameters",
     "[-d <Domain> [-w <Weight>] [-c <Cap>]]\n"
     "  -w  weight 1..65535 (default 256): cgroup cpu.weight = weight * 100 / 256\n"
     "  -c  cap in percent of one CPU, 0 = none: cgroup cpu.max"},
    {"sched-credit2", cli_sched_credit2, "Get/set credit2 scheduler parameters",
     "[-d <Domain> [-w <Weight>] [-c <Cap>]]\n"
     "  the same as sched-credit: one scheduler (Linux's) serves both"},
    {"vcpu-list", cli_vcpu_list, "List the VCPUs for all/some domains", "[Domain]"},
    {"vcpu-pin", cli_vcpu_pin, "Set which CPUs a VCPU can use",
     "[-f] <Domain> <VCPU|all> <Hard affinity|-> [Soft affinity|-]\n"
     "  CPU lists as xl's: all, 0-3,5, all,^1; '-' keeps that affinity;\n"
     "  soft affinity is recorded and shown only (Linux has none)"},
    {"mem-set", cli_mem_set, "Set the current memory usage for a domain",
     "<Domain> <Mem>\n"
     "  a size as xl's: a number with b, k, m, g or t (none: MiB); the guest's\n"
     "  balloon driver gives memory back to the host or takes it again"},
    {"mem-max", cli_mem_max, "Set the maximum amount reservation for a domain",
     "<Domain> <Mem>\n"
     "  as mem-set's sizes; at least the target, at most the maxmem it was created with"},
    {"top", cli_top, "Monitor a host and the domains in real time (xentop's table)",
     "[-b] [-i N] [-d S] [-n] [-x] [-v] [-r] [-f]\n"
     "  -b batch: the table only, each iteration; -i N iterations; -d S seconds between\n"
     "  them (3); -n per-vif lines; -x per-vbd lines; -v online vCPUs' seconds;\n"
     "  -r header before each domain; -f full names"},
    {"vcpu-set", cli_vcpu_set, "Set the number of active VCPUs allowed for the domain",
     "[-i|--ignore-host] <Domain> <vCPUs>\n"
     "  -i, --ignore-host  Don't limit the vCPU based on the host CPU count"},
    {"help", cli_help, "Print this help", "[command]"},
};

static const struct cli_cmd *find(const char *name)
{
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (!strcmp(cmds[i].name, name))
            return &cmds[i];
    }
    return NULL;
}

void cli_usage(const char *name)
{
    const struct cli_cmd *c = find(name);

    if (c)
        fprintf(stderr, "Usage: domus %s %s\n\n%s.\n", c->name, c->usage, c->help);
}

int cli_usage_error(const char *cmd)
{
    cli_usage(cmd);
    return CLI_EXIT_USAGE;
}

static void help_all(FILE *f)
{
    fprintf(f, "Usage: domus [-v] [--version] <subcommand> [args]\n\n"
               "-v: verbose (create: the time each phase took)\n\n"
               "domus full list of subcommands:\n\n");
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        fprintf(f, " %-20s%s\n", cmds[i].name, cmds[i].help);
}

int cli_help(int argc, char **argv)
{
    if (argc > 1 && find(argv[1])) {
        const struct cli_cmd *c = find(argv[1]);
        printf("Usage: domus %s %s\n\n%s.\n", c->name, c->usage, c->help);
        return 0;
    }
    help_all(stdout);
    return 0;
}

int cli_main(int argc, char **argv)
{
    const struct cli_cmd *c;

    cli_t0 = drealtime_ns();
    for (; argc > 1 && !strcmp(argv[1], "-v"); argc--, argv++)
        cli_verbose++;
    if (argc < 2) {
        help_all(stderr);
        return CLI_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("domus %s\n", DOMUS_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
        return cli_help(1, argv);
    c = find(argv[1]);
    if (!c) {
        fprintf(stderr, "domus: unknown subcommand '%s'\n", argv[1]);
        help_all(stderr);
        return CLI_EXIT_USAGE;
    }
    return c->fn(argc - 1, argv + 1);
}
