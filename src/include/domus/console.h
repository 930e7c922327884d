/* The PV console back end of one domain (Domain 0 side of hvc0).
 *
 * It owns the console ring in the domain's special page and a Domain 0 event
 * channel; guest output (ring and CONSOLEIO_write) goes to a log file and to
 * every client of a unix socket; client input goes into the ring. */
#ifndef DOMUS_CONSOLE_H
#define DOMUS_CONSOLE_H

#include "domus/hv.h"

#include <stddef.h>

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
