/* Contract between the control plane (domusd) and the per-domain process
 * (domus-vm).  One domus-vm process runs one guest domain: its KVM VM, vCPU
 * threads, guest memory, hypercalls, event channels, grant table and console
 * back end.
 *
 * Command line:
 *   domus-vm --domid N --name NAME --kernel PATH [--ramdisk PATH]
 *            [--cmdline STR] --memory MIB [--maxmem MIB] --vcpus N
 *            --console-log PATH --console-sock PATH --control-sock PATH
 *            [--ready-fd FD] [--xenstore] [--xenstore-path SOCK]
 *            [--disk DEVID:MODE:PATH]... [--vif DEVID,MAC,BRIDGE[,MTU]]...
 *            [--restore IMAGE [--paused] [--lazy|--postcopy]]   (in place of --kernel)
 *
 * --restore IMAGE: the domain's memory, clock, vCPUs and HVM params come
 * from a save image (docs/save-image.md) instead of the builder; a bad
 * image is a set-up error.  --paused: its vCPUs wait for an unpause.
 * --lazy: the memory is read on demand and in the background (vmlazy.h);
 * the records but the pages are checked at set-up, the checksum once every
 * page is read: a failure then destroys the domain (DOMUS_VM_EXIT_DESTROYED,
 * with an error line).
 * --postcopy: a post-copy migration's stream (docs/migration.md): IMAGE is
 * /proc/self/fd/0 and stdin a socket to the receiver, which carries the
 * stream, then the pages the source still held (vmlazy.h) while requests
 * for them go back; a failure after the guest ran destroys the domain as
 * --lazy's does.
 *
 * Start-up: all set-up errors print one "domus-vm: error: ..." line on stderr
 * and exit with DOMUS_VM_EXIT_ERROR, leaving no file behind.  When the domain
 * is built and its vCPUs are about to run, "ready\n" is written to the ready
 * fd (if given), which is then closed.
 *
 * End: the exit status says why the domain ended: DOMUS_VM_EXIT_SHUTDOWN_BASE
 * plus Xen's SHUTDOWN_* reason (xen/sched.h: poweroff 0, reboot 1, suspend 2,
 * crash 3, watchdog 4, soft_reset 5).  SIGTERM destroys the domain (exits
 * DOMUS_VM_EXIT_DESTROYED).  Triple fault counts as a reboot, as on Xen HVM.
 *
 * Console socket (unix stream, several clients): bytes written go to the
 * guest's console input; the guest's console output is sent to every client.
 * The console log receives all guest console output.
 *
 * Control socket (unix stream): JSON lines, one request and one reply per
 * connection: the messages are in vmctl.h (pause, unpause, info, xs-ring,
 * shutdown, attach, detach, save, resume).  The process's structure (init levels, device
 * table) is vm.h and docs/domain-process.md.
 *
 * --xenstore: the domain gets a xenstore ring page and event channel
 * (HVM_PARAM_STORE_PFN/STORE_EVTCHN); without it both are 0 and the guest
 * runs without xenstore.  --xenstore-path SOCK: xenstored's socket, for the
 * back ends (domusd passes it with every --xenstore).
 *
 * --disk DEVID:MODE:PATH (at most VM_MAX_DISKS, needs --xenstore and
 * --xenstore-path): one virtual disk served by a blkback thread
 * (blkback.h): DEVID is Xen's vdev number (xvdb = 51728), MODE "r" or "w",
 * PATH the raw image (opened before the guest runs; an error there is a
 * set-up error).  The back end connects to xenstored at SOCK as Domain 0
 * and waits for the toolstack's /local/domain/0/backend/vbd/<domid>/<DEVID>
 * (state written last) before it advertises the disk.
 *
 * --vif DEVID,MAC,BRIDGE[,MTU] (at most VM_MAX_VIFS, needs --xenstore and
 * --xenstore-path): one virtual network interface served by a netback
 * thread: tap device vif<domid>.<DEVID> attached to BRIDGE (created when
 * missing); DEVID is the interface's handle (0, 1, ...), MAC the guest's
 * address (xx:xx:xx:xx:xx:xx), MTU 68..65535 (default 1500).  The back end
 * waits for /local/domain/0/backend/vif/<domid>/<DEVID> (state written
 * last) before it advertises the interface.
 */
#ifndef DOMUS_VMPROC_H
#define DOMUS_VMPROC_H

#define VM_MAX_DISKS 16
#define VM_MAX_VIFS 8
#define DOMUS_VM_EXIT_ERROR 1
#define DOMUS_VM_EXIT_DESTROYED 2
#define DOMUS_VM_EXIT_SHUTDOWN_BASE 10

#endif
