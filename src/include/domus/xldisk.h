/* xl disk specifications (xl-disk-configuration(5)): the strings of
 * xl.cfg's `disk = [ ... ]`, as xlcfg stores them raw.
 *
 * A spec is comma-separated: KEY=VALUE pairs, flags, and positional
 * parameters assigned in order to target, format, vdev, access.  `target=`
 * must come last and takes the rest of the string (commas included).  The
 * deprecated forms "<prefix>:<target>,<vdev>[:cdrom],<access>" (prefixes
 * raw:, file:, phy:, aio:, tap:aio:, ...) are accepted too.
 *
 * Domus serves raw images only (format=raw); access ro/r or rw/w (default
 * rw); devtype disk or cdrom (cdrom implies read-only); backendtype phy,
 * qdisk or tap (recorded; Domus's own blkback serves them all); the flags
 * discard/no-discard, direct-io-safe, cdrom.  Anything else is an error. */
#ifndef DOMUS_XLDISK_H
#define DOMUS_XLDISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XLDISK_TARGET_MAX 4096
#define XLDISK_VDEV_MAX 32

struct xldisk {
    char target[XLDISK_TARGET_MAX]; /* the image (file or block device) */
    char vdev[XLDISK_VDEV_MAX];     /* as written: "xvdb", "hda", "51728" */
    uint32_t devid;                 /* Xen's vdev encoding of vdev */
    bool readwrite;                 /* access rw (default) */
    bool cdrom;                     /* devtype=cdrom */
    bool discard;                   /* default true; no-discard clears it */
    bool direct_io_safe;
    char backendtype[8]; /* "phy" (default), "qdisk", "tap" */
};

/* Parses spec (the n-th disk, counted from 0, for messages) into *d.
 * 0, or -EINVAL with "disk N 'spec': reason" in err. */
int xldisk_parse(const char *spec, unsigned n, struct xldisk *d, char *err,
                 size_t errlen);

/* Xen's virtual device number (docs/misc/vbd-interface.txt, libxl's
 * libxl__device_disk_dev_number) of a vdev name: xvd[a-z]+[N], hd[a-d][N],
 * sd[a-p][N], d<D>[p<P>], or a decimal number.  xvda = 51712, xvdb = 51728.
 * 0 or -EINVAL. */
int xldisk_devid(const char *vdev, uint32_t *devid);

/* Writes d back as one canonical spec ("format=raw,vdev=..,access=..,
 * devtype=..,backendtype=..[,no-discard][,direct-io-safe],target=..").
 * 0 or -ENAMETOOLONG. */
int xldisk_format(const struct xldisk *d, char *buf, size_t len);

#endif
