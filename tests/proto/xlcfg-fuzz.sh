#!/bin/bash
# Bounded libFuzzer run over the xl.cfg parser and the disk and vif specs of
# the configurations it accepts (tests/fuzz/xlcfg_fuzz.c): builds
# build/fuzz/xlcfg_fuzz, seeds a corpus with realistic xl.cfg files, runs
# XLCFG_FUZZ_SECONDS (default 30) seconds.  Prints PASS/FAIL lines; exits 1
# if the fuzzer finds a crash, a sanitizer report or a disk or vif whose
# canonical form does not parse back the same.
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/fuzz/lib-fuzz.sh
. tests/fuzz/lib-fuzz.sh
SECS=${XLCFG_FUZZ_SECONDS:-30}

fuzz_main xlcfg "$SECS" <<'EOF'
cfgs = {
    "minimal": """name = "g1"
kernel = "/boot/vmlinuz"
""",
    "debian": """# Debian guest, as xl create would take it
name = "debian-1"
type = "pvh"
uuid = "5e3f1a2b-0000-4000-8000-00000000abcd"
kernel = "/var/lib/domus/vmlinuz-6.1.0-56-cloud-amd64"
ramdisk = "/var/lib/domus/initrd.img-6.1.0-56-cloud-amd64"
cmdline = "console=hvc0 root=/dev/xvda1 ro quiet"
memory = 1024
maxmem = 2048
vcpus = 2
maxvcpus = 4
on_poweroff = "destroy"
on_reboot = "restart"
on_crash = "preserve"
disk = [ '/srv/guests/debian-1.img,raw,xvda,rw',
         'format=raw, vdev=xvdb, access=ro, target=/srv/data/shared, with, commas.img',
         'phy:/dev/vg0/debian-1-swap,xvdc,w' ]
vif = [ 'mac=00:16:3e:00:00:0a,bridge=xenbr0', '' ]
""",
    "root-extra": """name='web.example_1'; kernel='/k'; ramdisk='/r'
root = '/dev/xvda1 ro'
extra = "console=hvc0 \\"quoted\\" \\x41\\101\\t"
extra += ' systemd.unit=multi-user.target'
memory = 0x200
vcpus = 8
""",
    "disks": """name = "disks"
kernel = "/k"
disk = [
    '/img/a.raw,raw,xvda,rw,no-discard,direct-io-safe',
    '/dev/vg/g,,hda',
    '/root/i.iso,,hdc,cdrom',
    '/root/i2.iso,raw,hdd,devtype=cdrom',
    'vdev=xvde,devtype=disk,backendtype=qdisk,target=/a',
    'raw:/root/i3.iso,sda:cdrom,ro',
    'file:/b.img,sdb2,r',
    'tap:aio:/c.img,xvdf,w',
    'format=raw,vdev=d5p1,access=w,backend=Domain-0,trusted,discard,target=/x y',
    '/e.img,raw,51728,rw',
]
disk += [ "/f.img,raw,xvdaa,rw" ]
""",
    "vifs": """name = "net"
kernel = "/k"
memory = 256
vif = [ 'mac=00:16:3E:12:34:56, bridge=br0, vifname=vif-net, type=vif, model=e1000',
        'bridge=xenbr1,script=/etc/xen/scripts/vif-bridge,ip=10.0.0.2 fe80::1/64',
        'rate=10Mb/s@50ms,mtu=9000,backend=0,devid=3',
        'type=ioemu,rate=100KB/s,mtu=68,devid=65535', '' ]
""",
    "errors-devices": """name = "baddev"
kernel = "/k"
disk = [ '/a,qcow2,xvda', 'vdev=xvda,vdev=xvdb,target=/a', '/a,raw,xvda,rw,cdrom',
         '/a,raw,xvda,backend=dom5', 'raw:/a,xvda:tape,w', '/a,raw,xvda0', ',raw,xvda' ]
vif = [ 'mac=01:00:5e:00:00:01', 'mac=00:00:00:00:00:00', 'mtu=70000', 'bridge=a/b',
        'rate=1Tb/s', 'mtu=1500,mtu=1500', 'backend=dom1', 'devid=070' ]
""",
    "foreign": """# from a Xen host: ignored keys warn, device keys stay errors when set
name = "example.pvlinux"
builder = "generic"
kernel = "/boot/vmlinuz"
extra = "root=/dev/xvda1"
cpu_weight = 256
cap = 0
pool = "Pool-0"
vnc = 1
vfb = [ ]
pci = [ ]
usb = 0
seclabel += "system_u:system_r:domU_t"
on_watchdog = "destroy"
pci += [ '0000:00:1f.2' ]
""",
    "crlf-continued": "name='a'\r\nkernel=\\\n'/k'\r\non_poweroff='restart' # comment\r\n"
                      "vif=[ 'bridge=xenbr0' , ]\r\ndisk=[]\r\n",
}
# At the limits: a value of PATH_MAX bytes, a list of 65 items, root + extra
# longer than a command line, a uuid in capitals, 16 disks and 8 vifs.
cfgs["long-value"] = "name='l'\nkernel='/%s'\n" % ("k" * 4095)
cfgs["long-list"] = "name='l'\nkernel='/k'\nextra=[%s]\n" % ",".join(["'x'"] * 65)
cfgs["long-cmdline"] = "name='l'\nkernel='/k'\nroot='%s'\nextra='%s'\n" % ("r" * 1500, "e" * 1000)
cfgs["full-lists"] = ("name='f'\nkernel='/k'\nuuid='5E3F1A2B-0000-4000-8000-00000000ABCD'\n"
                      "disk=[%s]\nvif=[%s]\n" % (
                          ",".join("'/d%d.img,raw,xvd%s,rw'" % (i, chr(97 + i)) for i in range(16)),
                          ",".join("'mac=00:16:3e:00:00:%02x,devid=%d'" % (i + 1, i) for i in range(8))))
# One error each (the parser stops at the first).
errors = ['name = "bad name!"', 'name = "1234"', 'kernel = ""', "memory = 16", "vcpus = 0",
          "vcpus = 4\nmaxvcpus = 2", "maxmem = 64", 'type = "hvm"', 'type = "pv"',
          'on_crash = "coredump-destroy"', 'on_reboot = "reboot"', 'uuid = "not-a-uuid"',
          "foo = 1", "memory = '256'", "disk = '/a,raw,xvda'", "name = ['a']",
          "extra = '%s'\nextra += '%s'" % ("e" * 2000, "f" * 100),
          "kernel = '/%s'\nkernel += '%s'" % ("k" * 3000, "l" * 1200),
          "disk = [%s]\ndisk += [%s]" % (",".join(["'d'"] * 16), ",".join(["'d'"] * 49)),
          "extra = 'a'\nextra += ['b']", "memory = 99999999999999999999999", "[", "name 'a'",
          "name = 'a' 'b'", "kernel = '/k\\q'", "kernel = '/k"]
for i, e in enumerate(errors):
    cfgs["err-%02d" % i] = "name = 'e'\nkernel = '/k'\n" + e + "\n"
seeds = {name: text.encode() for name, text in cfgs.items()}
EOF
