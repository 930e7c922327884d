/* domus: the command-line toolstack, driven like Xen's xl.  The subcommand
 * table lives in cli_table.c; each subcommand parses its arguments and sends
 * one request to domusd. */
#include "domus/cli.h"

int main(int argc, char **argv)
{
    return cli_main(argc, argv);
}
