#!/usr/bin/env python3
"""Finds the static key behind an "Oops: int3" of the test host's kernel.

Under QEMU's multi-threaded TCG a test-host CPU has executed the int3 of a
finished text_poke_bp (a static key's switch rewriting a jump site).  This
reads the oops's "Code:" line from a serial log, finds those bytes in the
.text of the kernel (the vmlinux inside the bzImage: no symbols needed),
and looks the site up in the kernel's jump table (struct jump_entry: s32
code, s32 target, long key, each relative to its own field).  It prints
the key's address as an offset from _text, which name-int3.sh turns into a
name with /proc/kallsyms from one test-host boot.

    int3-site.py VMLINUZ LOG     -> "site 0x... key_offset 0x... func F"
Exit status 1 with a reason when there is no oops or no jump-table site.
"""
import bz2
import gzip
import lzma
import re
import struct
import subprocess
import sys

# Payload magics (arch/x86/boot/compressed) and how to undo each.
MAGICS = [
    (b"\x28\xb5\x2f\xfd", ["zstd", "-dc"]),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x1f\x8b\x08", "gzip"),
    (b"\x02\x21\x4c\x18", ["lz4", "-dc"]),
    (b"BZh", "bzip2"),
    (b"\x5d\x00\x00", "lzma"),
]


def fail(msg):
    print(f"int3-site: {msg}", file=sys.stderr)
    sys.exit(1)


def vmlinux_of(path):
    """The ELF inside a bzImage: its payload (setup header's
    payload_offset/length), decompressed by the format its magic names."""
    img = open(path, "rb").read()
    if img[0x202:0x206] != b"HdrS":
        fail(f"{path}: not a bzImage")
    setup = (img[0x1F1] or 4) + 1
    off, length = struct.unpack_from("<II", img, 0x248)
    payload = img[setup * 512 + off : setup * 512 + off + length]
    for magic, how in MAGICS:
        if not payload.startswith(magic):
            continue
        if how == "xz":
            return lzma.decompress(payload)
        if how == "lzma":
            return lzma.decompress(payload, format=lzma.FORMAT_ALONE)
        if how == "gzip":
            return gzip.decompress(payload)
        if how == "bzip2":
            return bz2.decompress(payload)
        out = subprocess.run(how, input=payload, capture_output=True)
        if not out.stdout.startswith(b"\x7fELF"):
            fail(f"{how[0]} could not unpack the payload")
        return out.stdout
    fail(f"{path}: unknown payload format {payload[:6].hex()}")


def sections(elf):
    """(name, addr, bytes) of each allocated PROGBITS section."""
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    hdrs = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    strtab = hdrs[shstrndx]
    out = []
    for h in hdrs:
        name_off, typ, flags, addr, off, size = h[:6]
        if typ != 1 or not flags & 2:  # PROGBITS, SHF_ALLOC
            continue
        end = elf.index(b"\0", strtab[4] + name_off)
        out.append((elf[strtab[4] + name_off : end].decode(), addr, elf[off : off + size]))
    return out


def oops_code(log):
    """The first int3 oops's function and Code: bytes (marker index)."""
    text = open(log, errors="replace").read()
    at = text.find("Oops: int3")
    if at < 0:
        fail(f"{log}: no 'Oops: int3'")
    rip = re.search(r"RIP: \w+:(\S+)", text[at:])
    code = re.search(r"Code: ([0-9a-f <>]+)", text[at:])
    if not code:
        fail(f"{log}: the oops has no Code: line")
    words = code.group(1).split()
    mark = next(i for i, w in enumerate(words) if w.startswith("<"))
    return (rip.group(1) if rip else "?"), [int(w.strip("<>"), 16) for w in words], mark


def jump_sites(secs):
    """{code address: key address} of every jump entry in the data sections
    (__jump_table has no section of its own: it sits in .data)."""
    sites = {}
    for name, addr, data in secs:
        if name == ".text" or name.startswith(".BTF") or name.startswith(".orc"):
            continue
        for i in range(0, len(data) - 15, 8):
            code, target, key = struct.unpack_from("<iiq", data, i)
            a = addr + i
            sites.setdefault(a + code, []).append((a + 4 + target, (a + 8 + key) & ~3))
    return sites


def main():
    if len(sys.argv) != 3:
        fail("usage: int3-site.py VMLINUZ LOG")
    func, code, mark = oops_code(sys.argv[2])
    secs = sections(vmlinux_of(sys.argv[1]))
    text = next(s for s in secs if s[0] == ".text")
    tbase = text[1]
    # The int3 was at the byte before the reported RIP; the bytes before it
    # are left as they are on disk, more or fewer of them patched elsewhere.
    before = bytes(code[: mark - 1])
    sites = jump_sites(secs)
    for n in (len(before), 24, 16, 12, 8, 6):
        pat = before[-n:]
        found = set()
        for m in re.finditer(re.escape(pat), text[2]):
            site = tbase + m.end()
            for target, key in sites.get(site, []):
                if tbase <= target < tbase + len(text[2]):
                    found.add((site, key))
        if len(found) == 1:
            site, key = found.pop()
            print(f"site {site:#x} key_offset {key - tbase:#x} func {func}")
            return
    fail(f"the oops in {func} is at no jump-table site found in .text "
         "(a static_call, ftrace or kprobe patch, or a module's code)")


main()
