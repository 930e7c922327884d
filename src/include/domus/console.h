/* The PV console back end of one domain (Domain 0 side of hvc0).
 *
 * It owns the console ring in the domain's special page and a Domain 0 event
 * channel; guest output from the ring goes to a log file and to every client
 * of a unix socket; client input goes into the ring.  The output is taken
 * at xenconsoled's rate (at most 30 ring batches per 200 ms: a faster guest
 * waits for room), and the log file is kept under CONSOLE_LOG_MAX bytes: at
 * the cap, its newest half is kept, after a line that says older output was
 * dropped. */
#ifndef DOMUS_CONSOLE_H
#define DOMUS_CONSOLE_H

#include "domus/hv.h"

#include <stddef.h>

#define CONSOLE_LOG_MAX (4u << 20)

struct console_be;

/* Sets up the ring page, the event channel and HVM_PARAM_CONSOLE_*, opens the
 * log (appending) and listens on sock_path; starts the back-end thread.
 * -errno with a reason in err on failure, nothing left behind. */
int console_start(struct domain *d, const char *log_path, const char *sock_path,
                  struct console_be **out, char *err, size_t errlen);

/* Drains remaining guest output, stops the thread, closes everything and
 * removes the socket.  NULL is fine. */
void console_stop(struct console_be *c);

#endif
