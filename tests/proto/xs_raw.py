#!/usr/bin/env python3
"""Raw xenstore wire-protocol client for domus-xenstored's protocol tests.

Sends malformed and edge-case messages (struct xsd_sockmsg framing from
xen/io/xs_wire.h) and prints one PASS/FAIL line per check.  Exit status is
the number of failures (capped at 1).  Socket path from $XENSTORED_PATH.
"""
import os
import socket
import struct
import sys
import time

XS_CONTROL, XS_DIRECTORY, XS_READ, XS_GET_PERMS, XS_WATCH, XS_UNWATCH = 0, 1, 2, 3, 4, 5
XS_TRANSACTION_START, XS_TRANSACTION_END, XS_INTRODUCE, XS_RELEASE = 6, 7, 8, 9
XS_GET_DOMAIN_PATH, XS_WRITE, XS_MKDIR, XS_RM, XS_SET_PERMS = 10, 11, 12, 13, 14
XS_WATCH_EVENT, XS_ERROR = 15, 16
PAYLOAD_MAX = 4096

failures = 0


def check(name, ok, detail=""):
    global failures
    if ok:
        print(f"PASS {name}")
    else:
        failures += 1
        print(f"FAIL {name} {detail}")


class Client:
    def __init__(self):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(os.environ["XENSTORED_PATH"])
        self.s.settimeout(5)
        self.req = 0
        self.events = []  # watch event paths skipped over by reply()

    def send(self, typ, payload=b"", tx=0, length=None):
        self.req += 1
        n = len(payload) if length is None else length
        self.s.sendall(struct.pack("<IIII", typ, self.req, tx, n) + payload)
        return self.req

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def reply(self):
        """Next message that is not a watch event: (type, req_id, tx, body)."""
        while True:
            hdr = self.recv_exact(16)
            if hdr is None:
                return None
            typ, req, tx, n = struct.unpack("<IIII", hdr)
            body = self.recv_exact(n) if n else b""
            if typ != XS_WATCH_EVENT:
                return typ, req, tx, body
            self.events.append(body.split(b"\0")[0])

    def call(self, typ, payload=b"", tx=0):
        self.send(typ, payload, tx)
        return self.reply()

    def close(self):
        self.s.close()


def args(*a):
    return b"".join(x.encode() + b"\0" for x in a)


def is_err(r, name):
    return r is not None and r[0] == XS_ERROR and r[3] == name.encode() + b"\0"


def alive():
    c = Client()
    r = c.call(XS_READ, args("/tool/xenstored"))
    c.close()
    return r is not None and r[0] == XS_READ


def main():
    c = Client()
    r = c.call(XS_READ, b"/tool")  # no NUL
    check("raw: READ without NUL -> EINVAL", is_err(r, "EINVAL"), r)
    r = c.call(99, args("/"))
    check("raw: unknown type 99 -> ENOSYS", is_err(r, "ENOSYS"), r)
    r = c.call(XS_WATCH_EVENT, args("/", "t"))
    check("raw: client-sent WATCH_EVENT -> ENOSYS", is_err(r, "ENOSYS"), r)
    r = c.call(XS_READ, args("/tool"), tx=4242)
    check("raw: unknown transaction id -> ENOENT", is_err(r, "ENOENT"), r)
    r = c.call(XS_READ, args("/" + "x" * 3000))
    check("raw: too-long path -> EINVAL", is_err(r, "EINVAL"), r)
    r = c.call(XS_WRITE, args("/a b") + b"v")
    check("raw: bad path characters -> EINVAL", is_err(r, "EINVAL"), r)
    r = c.call(XS_TRANSACTION_END, args("T"))
    check("raw: TRANSACTION_END outside transaction -> ENOENT", is_err(r, "ENOENT"), r)
    r = c.call(XS_GET_DOMAIN_PATH, args("3"))
    check("raw: reply echoes req_id", r is not None and r[1] == c.req and r[3] == b"/local/domain/3\0", r)
    val = bytes(range(256)) * 8
    r = c.call(XS_WRITE, args("/raw/bin") + val)
    r = c.call(XS_READ, args("/raw/bin"))
    check("raw: 2 KiB binary value round-trips", r is not None and r[3] == val)

    # Oversized payload: Xen closes the connection; others carry on.
    bad = Client()
    bad.send(XS_READ, b"", length=PAYLOAD_MAX + 1)
    try:
        got = bad.s.recv(16)
    except (ConnectionResetError, socket.timeout):
        got = b""
    check("raw: payload > XENSTORE_PAYLOAD_MAX closes that connection", got == b"", got)
    bad.close()
    check("raw: daemon alive after oversized message", alive())

    # A message cut short, then the client vanishes.
    cut = Client()
    cut.s.sendall(struct.pack("<IIII", XS_WRITE, 1, 0, 100) + b"/half")
    cut.close()
    check("raw: daemon alive after half a message", alive())

    # Garbage bytes.
    g = Client()
    g.s.sendall(os.urandom(4000))
    g.close()
    check("raw: daemon alive after random bytes", alive())

    # A client that never reads: its replies pile up, others are served.
    slow = Client()
    slow.s.setblocking(False)
    sent = 0
    msg = struct.pack("<IIII", XS_DIRECTORY, 1, 0, 2) + b"/\0"
    deadline = time.time() + 3
    while time.time() < deadline:
        try:
            slow.s.send(msg * 64)
            sent += 64
        except BlockingIOError:
            break
    t0 = time.time()
    ok = alive()
    check(f"raw: slow reader ({sent} unread requests) does not block others", ok and time.time() - t0 < 2)
    slow.close()
    check("raw: daemon alive after slow reader leaves", alive())

    # Many clients at once.
    many = [Client() for _ in range(100)]
    good = 0
    for i, m in enumerate(many):
        r = m.call(XS_WRITE, args(f"/raw/many/{i}") + str(i).encode())
        good += r is not None and r[0] == XS_WRITE
    for m in many:
        m.close()
    check("raw: 100 concurrent clients", good == 100, good)

    # Watch events interleaved with replies.
    w = Client()
    w.send(XS_WATCH, args("/raw/w", "tok"))
    hdr = w.recv_exact(16)
    typ, _, _, n = struct.unpack("<IIII", hdr)
    w.recv_exact(n)
    hdr = w.recv_exact(16)
    typ2, _, _, n = struct.unpack("<IIII", hdr)
    body = w.recv_exact(n)
    check("raw: WATCH ack then initial WATCH_EVENT", typ == XS_WATCH and typ2 == XS_WATCH_EVENT and body == b"/raw/w\0tok\0")
    c.call(XS_WRITE, args("/raw/w/x") + b"1")
    hdr = w.recv_exact(16)
    typ, req, tx, n = struct.unpack("<IIII", hdr)
    body = w.recv_exact(n)
    check("raw: WATCH_EVENT on write, req_id 0", typ == XS_WATCH_EVENT and req == 0 and body == b"/raw/w/x\0tok\0")
    w.close()

    # Domains over the socket (no ring hook in this daemon: INTRODUCE only
    # records the domain) and the special watches.
    w = Client()
    w.call(XS_WATCH, args("@introduceDomain", "in"))
    w.call(XS_WATCH, args("@releaseDomain", "out"))
    r = c.call(XS_INTRODUCE, args("3", "4096", "1"))
    check("raw: INTRODUCE", r is not None and r[0] == XS_INTRODUCE, r)
    r = c.call(17, args("3"))  # IS_DOMAIN_INTRODUCED
    check("raw: IS_DOMAIN_INTRODUCED -> T", r is not None and r[3] == b"T\0", r)
    r = c.call(XS_RELEASE, args("3"))
    check("raw: RELEASE", r is not None and r[0] == XS_RELEASE, r)
    events = w.events
    w.s.settimeout(2)
    while len(events) < 4:
        hdr = w.recv_exact(16)
        if hdr is None:
            break
        typ, _, _, n = struct.unpack("<IIII", hdr)
        body = w.recv_exact(n)
        if typ == XS_WATCH_EVENT:
            events.append(body.split(b"\0")[0])
    check("raw: @introduceDomain and @releaseDomain events",
          events.count(b"@introduceDomain") == 2 and events.count(b"@releaseDomain") == 2, events)
    w.close()

    # Transaction conflict over the socket.
    o = Client()
    r = c.call(XS_TRANSACTION_START, b"\0")
    tx = int(r[3].rstrip(b"\0")) if r and r[0] == XS_TRANSACTION_START else 0
    c.call(XS_READ, args("/raw/bin"), tx=tx)
    c.call(XS_WRITE, args("/raw/txw") + b"1", tx=tx)
    o.call(XS_WRITE, args("/raw/bin") + b"changed")
    r = c.call(XS_TRANSACTION_END, args("T"), tx=tx)
    check("raw: conflicting transaction -> EAGAIN", is_err(r, "EAGAIN"), r)
    r = o.call(XS_READ, args("/raw/txw"))
    check("raw: conflicting transaction not applied", is_err(r, "ENOENT"), r)
    o.close()
    c.call(XS_RM, args("/raw"))
    c.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
