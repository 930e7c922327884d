#!/bin/bash
# Bounded libFuzzer run over the domain builder's kernel images
# (tests/fuzz/builder_fuzz.c: builder_kernel_to_elf, then builder_load_elf
# into a 32 MiB guest): builds build/fuzz/builder_fuzz, seeds a corpus with
# small PVH ELF images (PT_LOAD segments, the XEN_ELFNOTE_PHYS32_ENTRY note)
# bare and as bzImage payloads, uncompressed and gzip, xz, zstd and lz4
# compressed, runs BUILDER_FUZZ_SECONDS (default 30) seconds on inputs of up
# to 64 KiB (a bzImage's setup alone may take 128 KiB; the default 16 KiB
# would keep the fuzzer from most setup_sects values).  Prints PASS/FAIL
# lines; exits 1 if the fuzzer finds a crash or a sanitizer report.
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/fuzz/lib-fuzz.sh
. tests/fuzz/lib-fuzz.sh
SECS=${BUILDER_FUZZ_SECONDS:-30}

fuzz_main builder "$SECS" 65536 <<'EOF'
import gzip, lzma, shutil, subprocess
PT_LOAD, PT_NOTE, PT_GNU_STACK = 1, 4, 0x6474e551
PHYS32_ENTRY = 18  # XEN_ELFNOTE_PHYS32_ENTRY
def note(name, typ, desc, align=4):
    n = name.encode() + b"\0"
    pad = lambda b: b + bytes(-len(b) % align)
    return struct.pack("<III", len(n), len(desc), typ) + pad(n) + pad(desc)
def elf(segs, notes, note_align=4, extra_ph=()):
    """ELF64 x86-64: segs = [(paddr, data, memsz)], notes = bytes of the PT_NOTE."""
    phs = len(segs) + 1 + len(extra_ph)
    off = 64 + 56 * phs
    body, ph = b"", []
    noff = off
    body += notes
    off += len(notes)
    for paddr, data, memsz in segs:
        pad = -off % 16
        body += bytes(pad)
        off += pad
        ph.append(struct.pack("<IIQQQQQQ", PT_LOAD, 5, off, 0xffffffff80000000 + paddr,
                              paddr, len(data), memsz, 0x1000))
        body += data
        off += len(data)
    ph.append(struct.pack("<IIQQQQQQ", PT_NOTE, 4, noff, 0, 0, len(notes), len(notes),
                          note_align))
    ph += [struct.pack("<IIQQQQQQ", t, 6, 0, 0, 0, 0, 0, 16) for t in extra_ph]
    eh = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9) + struct.pack(
        "<HHIQQQIHHHHHH", 2, 62, 1, 0xffffffff81000000, 64, 0, 0, 64, 56, phs, 64, 0, 0)
    return eh + b"".join(ph) + body
def text(n):
    return bytes((i * 7 + 1) & 255 for i in range(n))
def pvh(entry, size=4, align=4):
    return note("Xen", PHYS32_ENTRY, struct.pack("<I" if size == 4 else "<Q", entry), align)
MB = 1 << 20
elf_min = elf([(2 * MB, text(0x100), 0x2000)],
              note("GNU", 3, b"") + pvh(2 * MB + 0x10))
# As a vmlinux has them: other Xen notes first, two loads (text, data + bss),
# the entry in the second, an 8-byte PVH value in an 8-aligned note segment.
elf_two = elf([(MB, text(0x300), 0x300), (MB + 0x10000, b"data" * 64, 0x4000)],
              note("Xen", 6, b"linux\0", 8) + note("Xen", 5, b"xen-3.0\0", 8)
              + note("Xen", 1, struct.pack("<Q", 0xffffffff81000000), 8)
              + pvh(MB + 0x10010, 8, 8), note_align=8, extra_ph=(PT_GNU_STACK,))
elf_bss = elf([(16 * MB, b"\xf4" * 64, 8 * MB)], pvh(16 * MB))
elf_nopvh = elf([(2 * MB, text(64), 64)], note("GNU", 3, b"\0" * 4))
def bz(payload, olen=None, sects=1, extra=0):
    """bzImage, boot protocol 2.15: setup header, then the payload and le32 olen."""
    setup = bytearray((sects or 4) * 512 + 512)
    setup[0x1f1] = sects
    setup[0x1fe:0x200] = b"\x55\xaa"
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, 0x020f)
    tail = b"" if olen is None else struct.pack("<I", olen)
    struct.pack_into("<II", setup, 0x248, extra, len(payload) + len(tail))
    return bytes(setup) + bytes(extra) + payload + tail
def zstd_raw(data, rle=0):
    """A zstd frame of one raw block (+ an RLE block of rle zero bytes)."""
    f = b"\x28\xb5\x2f\xfd" + bytes([0xa0]) + struct.pack("<I", len(data) + rle)
    f += struct.pack("<I", (len(data) << 3) | (0 if rle else 1))[:3] + data
    if rle:
        f += struct.pack("<I", (rle << 3) | 2 | 1)[:3] + b"\0"
    return f
def lz4_literals(data):
    """LZ4 legacy frame, one literals-only block."""
    rest, b = len(data) - 15, bytearray([0xf0])
    while rest >= 255:
        b.append(255)
        rest -= 255
    b.append(rest)
    b += data
    return struct.pack("<II", 0x184C2102, len(b)) + bytes(b)
def tool(cmd, data):
    """Output of a compressor on data, or None when it is not installed."""
    if not shutil.which(cmd[0]):
        return None
    return subprocess.run(cmd, input=data, stdout=subprocess.PIPE, check=True).stdout
# xz as Linux's scripts/xz_wrap.sh makes it (CRC32, x86 BCJ, LZMA2), but with
# a 64 KiB dictionary: liblzma allocates the one the stream names, and the
# default 8 MiB (64 MiB at -9) cost ASan more per input than the rest.
lzma2 = {"id": lzma.FILTER_LZMA2, "preset": 9, "dict_size": 1 << 16}
xz_plain, xz_kernel = [lzma2], [{"id": lzma.FILTER_X86}, lzma2]
def xz(data, filters=xz_plain):
    return lzma.compress(data, lzma.FORMAT_XZ, lzma.CHECK_CRC32, filters=filters)
seeds = {"elf-min": elf_min, "elf-two-loads": elf_two, "elf-bss": elf_bss,
         "elf-no-pvh": elf_nopvh, "bz-uncompressed": bz(elf_min),
         "bz-sects0-offset": bz(elf_two, sects=0, extra=0x200)}
for name, e in (("min", elf_min), ("two", elf_two)):
    seeds["bz-gzip-" + name] = bz(gzip.compress(e, 9, mtime=0), len(e))
    seeds["bz-xz-" + name] = bz(xz(e), len(e))
    seeds["bz-xz-x86-" + name] = bz(xz(e, xz_kernel), len(e))
    seeds["bz-zstd-raw-" + name] = bz(zstd_raw(e), len(e))
    seeds["bz-lz4-literals-" + name] = bz(lz4_literals(e), len(e))
    for cmd, tag in ((["zstd", "-q", "-19", "-c"], "zstd"), (["lz4", "-q", "-l", "-9", "-c"], "lz4")):
        c = tool(cmd, e)
        if c:
            seeds["bz-%s-%s" % (tag, name)] = bz(c, len(e))
seeds["bz-zstd-rle"] = bz(zstd_raw(elf_min, rle=512), len(elf_min) + 512)
# Two lz4 frames back to back, then an end mark; an xz stream shorter than recorded.
seeds["bz-lz4-concat"] = bz(lz4_literals(elf_two[:700]) + lz4_literals(elf_two[700:])
                            + bytes(4), len(elf_two))
seeds["bz-xz-short"] = bz(xz(elf_min), len(elf_min) + 64)
seeds["bz-bzip2"] = bz(b"BZh91AY&SY" + bytes(32), 4096)
EOF
