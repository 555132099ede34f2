#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""
apertnic device cost: instructions the device model executes per frame.

Runs qemu-system-x86_64 under `valgrind --tool=callgrind` with collection
switched on only inside the core's entry points (apn_core_receive,
apn_core_aperture_write, apn_core_reg_write, apn_core_flush_timer) and
everything they call (DMA into guest RAM, handing a frame to the netdev).
QEMU runs with -accel qtest: this script speaks the qtest text protocol on a
unix socket to program the device as a driver would (PCI BARs, tables in guest
memory, routes, CTRL.ENABLE), and feeds/drains CI frames through a SOCK_DGRAM
socketpair on a dgram netdev.

Phases, each between two `clock_step 1` markers (callgrind is started with
--dump-before=qemu_clock_advance_virtual_time, so every marker writes out the
counts since the previous one and zeroes them; the virtual clock never reaches
the 50 us flush timer):

  rx-hit         K WRITE frames (64-byte payload) cycling over <= 32 apertures
                 that stay in the mapping cache (warmed beforehand)
  rx-hit-spread  the same, but the 32 apertures spread across the table
                 (stride N/32): same work, different cache keys
  rx-miss        K frames cycling over 512 apertures (> cache-entries), so
                 every lookup misses and reads the entry by DMA (N >= 1024)
  tx             K x (8 writeq of 8 bytes into outgoing aperture 0 + FENCE)

The device counters (BAR0) are read before and after each phase and checked:
every frame delivered, hits/misses as intended, no drops.

Not counted: everything QEMU does outside those functions per frame: the
dgram netdev's recvfrom/read handler and net queue on receive, qtest parsing
and the memory-region dispatch before apertnic_aperture_write on transmit,
the main loop, and the kernel (callgrind counts user-space instructions).

Every run uses a hard link (or copy) of the QEMU binary taken at the start,
so a rebuild meanwhile cannot mix two devices; the firmware directory is
passed with -L. N beyond 65536 raises max-in-apertures to N.

Output: CSV on stdout or --csv (one row per run), Markdown table with
--markdown, where the instructions go with --profile. Python 3 standard
library only.
"""

import argparse
import base64
import os
import re
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "..", ".."))
HW_H = os.path.join(TOP, "hw", "net", "apertnic", "apertnic_hw.h")

TOGGLE = ["apn_core_receive", "apn_core_aperture_write", "apn_core_reg_write",
          "apn_core_flush_timer"]
MARKER_FN = "qemu_clock_advance_virtual_time"
# The glue's timer ops: QEMU's timer_mod/timer_del under them may wake the
# main loop (qemu_notify_event -> event_notifier_set -> write(2)) a number of
# times that depends on where the main loop is, so their cost is shown apart.
TIMER_OPS = ("apertnic_timer_arm", "apertnic_timer_cancel")

DEV_MAC = bytes.fromhex("525400a70001")
PEER_MAC = bytes.fromhex("525400a70002")
SELF_HOST = 1
PEER_HOST = 2
DEVFN = 4 << 3                      # addr=04.0 on bus 0

# Guest physical layout (RAM is 512 MiB)
OUT_TABLE = 0x00800000
IN_TABLE = 0x01000000              # up to 65536 x 64 B = 4 MiB
DATA = 0x02000000                  # aperture memory (apertures share 256 pages),
                                   # or just above a larger table
DATA_PAGES = 256
AP_SIZE = 4096
MMIO_BASE = 0xe0000000             # BARs are assigned from here up
PAYLOAD = 64
HIT_SET = 32
MISS_SET = 512


def die(msg):
    print("device_cost: error: " + msg, file=sys.stderr)
    sys.exit(1)


# ---- hardware header -------------------------------------------------------

class Hw:
    """Numbers from apertnic_hw.h, so the bench follows the header."""

    def __init__(self, path):
        with open(path) as f:
            text = f.read()
        self.c = {}
        for m in re.finditer(r"^#define\s+(APN_\w+)\s+\(?(0x[0-9a-fA-F]+|\d+)[uUlL]*"
                             r"(?:\s*<<\s*(\d+))?\)?", text, re.M):
            v = int(m.group(2), 0)
            if m.group(3):
                v <<= int(m.group(3))
            self.c[m.group(1)] = v
        lst = re.search(r"#define APN_COUNTER_LIST\(C\)(.*?)\n\n", text, re.S)
        if not lst:
            die("cannot find APN_COUNTER_LIST in " + path)
        self.counters = re.findall(r'C\((\w+),\s*"(\w+)"\)', lst.group(1))
        self.cid = {name: i for i, (_, name) in enumerate(self.counters)}

    def __getattr__(self, name):
        try:
            return self.c["APN_" + name]
        except KeyError:
            raise AttributeError(name)


# ---- CRC32C (Castagnoli, reflected 0x82f63b78) -----------------------------

def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82f63b78 if c & 1 else c >> 1
        t.append(c)
    return t


CRC_TABLE = _crc_table()


def crc32c(data, crc=0):
    crc ^= 0xffffffff
    t = CRC_TABLE
    for b in data:
        crc = t[(crc ^ b) & 0xff] ^ (crc >> 8)
    return crc ^ 0xffffffff


assert crc32c(b"123456789") == 0xe3069283   # the standard check value


def nonce_of(i):
    return ((i * 0x9e3779b1 + 0x5a5a1234) & 0xffffffff) | 1


def write_frame(hw, in_index, offset, payload, seq=0):
    ci = struct.pack(">BBHHH", hw.WIRE_VERSION, 1, PEER_HOST, SELF_HOST, 0)
    ci += struct.pack(">BBHIIIII", hw.SEG_WRITE, 0, len(payload), in_index,
                      nonce_of(in_index), seq, offset, 0)
    ci += payload + bytes(-len(payload) % 4)
    ci += struct.pack(">I", crc32c(ci))
    f = DEV_MAC + PEER_MAC + struct.pack(">H", hw.ETHERTYPE) + ci
    return f + bytes(max(0, hw.MIN_ETH_FRAME - len(f)))


# ---- qtest client ----------------------------------------------------------

class QTest:
    def __init__(self, conn, timeout):
        self.s = conn
        self.buf = b""
        self.timeout = timeout

    def _line(self):
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.s], [], [], left)[0]:
                raise TimeoutError("qtest: no answer from QEMU")
            d = self.s.recv(1 << 16)
            if not d:
                raise EOFError("qtest: QEMU closed the connection")
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def replies(self, n):
        out = []
        while len(out) < n:
            line = self._line()
            if line.startswith("IRQ"):
                continue
            if not line.startswith("OK"):
                raise RuntimeError("qtest: " + line)
            out.append(line[2:].strip())
        return out

    def batch(self, cmds):
        """Send commands pipelined; return their replies."""
        if not cmds:
            return []
        self.s.sendall(("\n".join(cmds) + "\n").encode())
        return self.replies(len(cmds))

    def cmd(self, c):
        return self.batch([c])[0]

    def memwrite(self, addr, data, chunk=1 << 16):
        cmds = []
        for off in range(0, len(data), chunk):
            part = data[off:off + chunk]
            cmds.append("b64write 0x%x 0x%x %s" % (
                addr + off, len(part), base64.b64encode(part).decode()))
            if len(cmds) == 16:
                self.batch(cmds)
                cmds = []
        self.batch(cmds)

    def memread(self, addr, size):
        return base64.b64decode(self.cmd("b64read 0x%x 0x%x" % (addr, size)))

    # PCI configuration mechanism #1 (q35 keeps it, as libqos uses)
    def cfg_addr(self, reg):
        return 0x80000000 | (DEVFN << 8) | (reg & 0xfc)

    def cfg_read32(self, reg):
        self.cmd("outl 0xcf8 0x%x" % self.cfg_addr(reg))
        return int(self.cmd("inl 0xcfc"), 0)

    def cfg_write32(self, reg, val):
        self.batch(["outl 0xcf8 0x%x" % self.cfg_addr(reg),
                    "outl 0xcfc 0x%x" % val])

    def cfg_write16(self, reg, val):
        self.batch(["outl 0xcf8 0x%x" % self.cfg_addr(reg),
                    "outw 0x%x 0x%x" % (0xcfc + (reg & 2), val)])


# ---- one QEMU under callgrind --------------------------------------------

class Device:
    def __init__(self, args, hw, n, workdir, tag):
        self.args, self.hw, self.n = args, hw, n
        self.out = os.path.join(workdir, "callgrind.%s.out" % tag)
        self.log = os.path.join(workdir, "qemu.%s.log" % tag)
        self.sockpath = os.path.join(workdir, "qtest.%s.sock" % tag)
        self.labels = []
        self.data = max(DATA, (IN_TABLE + n * 64 + 0xfffff) & ~0xfffff)
        self.rx_frames = []
        self.stop_drain = threading.Event()

        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(self.sockpath)
        lsock.listen(1)
        self.net, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=no"]
        cmd += ["--toggle-collect=" + f for f in TOGGLE]
        # absolute line numbers and plain names: the parts stay readable by
        # callgrind_annotate and by profile() below
        cmd += ["--dump-before=" + MARKER_FN, "--compress-pos=no",
                "--compress-strings=no",
                "--callgrind-out-file=" + self.out,
                args.qemu_run] + (["-L", args.firmware] if args.firmware else []) + [
                "-machine", "q35", "-nodefaults", "-display", "none",
                "-accel", "qtest", "-qtest", "unix:" + self.sockpath,
                "-qtest-log", "/dev/null",
                "-m", "512",
                "-netdev", "dgram,id=n0,local.type=fd,local.str=%d" % theirs.fileno(),
                "-device", "apertnic,netdev=n0,addr=04.0,mac=%s,"
                "max-in-apertures=%d" % (":".join("%02x" % b for b in DEV_MAC),
                                         max(65536, n))]
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT,
                                     pass_fds=[theirs.fileno()])
        theirs.close()
        lsock.settimeout(args.start_timeout)
        try:
            conn, _ = lsock.accept()
        except socket.timeout:
            self.kill()
            die("QEMU did not connect to the qtest socket in %ds (see %s)"
                % (args.start_timeout, self.log))
        finally:
            lsock.close()
        self.q = QTest(conn, args.timeout)
        self.drainer = threading.Thread(target=self._drain, daemon=True)
        self.drainer.start()

    def _drain(self):
        # select + recv on the blocking socket: a timeout on the socket object
        # would make the main thread's sends time out too
        while not self.stop_drain.is_set():
            try:
                if select.select([self.net], [], [], 0.05)[0]:
                    self.rx_frames.append(self.net.recv(65536))
            except (OSError, ValueError):
                return

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        """SIGTERM: QEMU exits cleanly and callgrind writes its last part."""
        self.stop_drain.set()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=self.args.timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            die("QEMU did not exit after SIGTERM (see %s)" % self.log)
        self.q.s.close()
        self.net.close()
        self.logf.close()

    # -- registers --
    def wr(self, off, val):
        self.q.cmd("writel 0x%x 0x%x" % (self.bar0 + off, val))

    def counters(self):
        base = self.bar0 + self.hw.COUNTERS_BASE
        vals = self.q.batch(["readq 0x%x" % (base + 8 * i)
                             for i in range(len(self.hw.counters))])
        return {name: int(v, 0) for (_, name), v in zip(self.hw.counters, vals)}

    def marker(self, label):
        """Dump callgrind's counts since the last marker as part `label`."""
        self.q.cmd("clock_step 1")
        self.labels.append(label)

    # -- bring-up, as a driver would --
    def setup(self):
        hw, q = self.hw, self.q
        ids = q.cfg_read32(0)
        if ids != (hw.PCI_DEVICE_ID << 16 | hw.PCI_VENDOR_ID):
            die("no apertnic at 04.0 (config id 0x%08x)" % ids)
        addr = MMIO_BASE
        bars = {}
        reg = 0x10
        while reg <= 0x24:
            q.cfg_write32(reg, 0xffffffff)
            lo = q.cfg_read32(reg)
            is64 = (lo & 0x6) == 0x4
            hi = 0xffffffff
            if is64:
                q.cfg_write32(reg + 4, 0xffffffff)
                hi = q.cfg_read32(reg + 4)
            mask = (hi << 32 | (lo & ~0xf)) if is64 else (lo & ~0xf) | 0xffffffff00000000
            size = (~mask + 1) & 0xffffffffffffffff if lo & ~0xf else 0
            if size and not lo & 1:
                addr = (addr + size - 1) & ~(size - 1)
                q.cfg_write32(reg, addr & 0xffffffff)
                if is64:
                    q.cfg_write32(reg + 4, addr >> 32)
                bars[(reg - 0x10) // 4] = (addr, size)
                addr += size
            reg += 8 if is64 else 4
        if hw.BAR_REGS not in bars or hw.BAR_APERTURES not in bars:
            die("BAR0/BAR2 not found: %r" % bars)
        self.bar0 = bars[hw.BAR_REGS][0]
        self.bar2 = bars[hw.BAR_APERTURES][0]
        q.cfg_write16(0x04, 0x0006)          # memory space + bus master
        if int(q.cmd("readl 0x%x" % self.bar0), 0) != hw.MAGIC:
            die("BAR0 does not read APN_MAGIC")
        self.slot_shift = int(q.cmd("readl 0x%x" % (self.bar0 + hw.REG_OUT_SLOT_SHIFT)), 0)
        self.cache_entries = int(q.cmd("readl 0x%x" % (self.bar0 + hw.REG_CACHE_ENTRIES)), 0)
        if self.n > int(q.cmd("readl 0x%x" % (self.bar0 + hw.REG_MAX_IN)), 0):
            die("N=%d exceeds the device's MAX_IN" % self.n)

        # incoming table: N CONTIG data apertures, distinct nonces
        flags = hw.ENTRY_VALID | hw.IN_CONTIG
        tbl = bytearray()
        for i in range(self.n):
            base = self.data + (i % DATA_PAGES) * AP_SIZE
            tbl += struct.pack("<IHHH6sIIQIIII16x", flags, 0, 0, 0, bytes(6),
                               nonce_of(i), 0, base, AP_SIZE, 0, 0, 0)
        q.memwrite(IN_TABLE, bytes(tbl))
        # outgoing aperture 0 -> host PEER_HOST, in-index 7
        out = struct.pack("<IHHIIII40x", hw.ENTRY_VALID, 0, PEER_HOST, 7,
                          nonce_of(7), 1 << self.slot_shift, 0)
        q.memwrite(OUT_TABLE, out)
        self.wr(hw.REG_HOST_ID, SELF_HOST)
        self.wr(hw.REG_IN_TABLE_LO, IN_TABLE)
        self.wr(hw.REG_IN_TABLE_HI, 0)
        self.wr(hw.REG_IN_TABLE_COUNT, self.n)
        self.wr(hw.REG_OUT_TABLE_LO, OUT_TABLE)
        self.wr(hw.REG_OUT_TABLE_HI, 0)
        self.wr(hw.REG_OUT_TABLE_COUNT, 1)
        route = hw.HOST_VALID | int.from_bytes(PEER_MAC, "little")
        q.cmd("writeq 0x%x 0x%x" % (self.bar0 + hw.REG_HOST_MAC_BASE + 8 * PEER_HOST, route))
        self.wr(hw.REG_CTRL, hw.CTRL_ENABLE)

    # -- traffic --
    def wait(self, before, want, what):
        """Poll the counters until every `want` delta is reached."""
        deadline = time.monotonic() + self.args.timeout
        while True:
            now = self.counters()
            if all(now[k] - before[k] >= v for k, v in want.items()):
                return now
            if time.monotonic() > deadline:
                die("%s: timed out; counters moved: %s" % (what, {
                    k: now[k] - before[k] for k in now if now[k] != before[k]}))
            time.sleep(0.02)

    def send_rx(self, indices, k, seq_start=0):
        frames = []
        for i in range(k):
            idx = indices[i % len(indices)]
            off = (i * PAYLOAD) % AP_SIZE
            payload = bytes(((i + j) & 0xff) for j in range(PAYLOAD))
            frames.append(write_frame(self.hw, idx, off, payload))
        before = self.counters()
        for f in frames:
            self.net.send(f)
        after = self.wait(before, {"rx_frames": k}, "rx")
        return before, after

    def tx_burst_cmds(self, i):
        cmds = ["writeq 0x%x 0x%x" % (self.bar2 + 8 * w,
                                     (i * 8 + w) * 0x0101010101010101 & (2**64 - 1))
                for w in range(PAYLOAD // 8)]
        cmds.append("writel 0x%x 0x0" % (self.bar0 + self.hw.USER_PAGES_BASE +
                                         self.hw.UREG_FENCE))
        return cmds

    def send_tx(self, k):
        before = self.counters()
        got0 = len(self.rx_frames)
        # One frame's stores and fence in one write, then wait for the
        # replies: QEMU reads them in one go, so how often the idle timer's
        # re-arm has to wake the main loop does not depend on timing.
        for i in range(k):
            self.q.batch(self.tx_burst_cmds(i))
        after = self.wait(before, {"tx_frames": k}, "tx")
        deadline = time.monotonic() + self.args.timeout
        while len(self.rx_frames) - got0 < k and time.monotonic() < deadline:
            time.sleep(0.02)
        return before, after, len(self.rx_frames) - got0


def delta(before, after):
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


def drops(d):
    return {k: v for k, v in d.items()
            if k.startswith(("rx_drop_", "tx_drop_")) or k == "rx_filtered"}


def read_parts(out):
    """Callgrind's dump files for one run, in order: [(path, Ir)]."""
    d = os.path.dirname(out)
    base = os.path.basename(out)
    parts = []
    for name in os.listdir(d):
        m = re.fullmatch(re.escape(base) + r"(?:\.(\d+))?", name)
        if m:
            parts.append((int(m.group(1)) if m.group(1) else 1 << 30,
                          os.path.join(d, name)))
    res = []
    for _, path in sorted(parts):
        ir = None
        timer = 0
        cfn = None
        call = False
        with open(path) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    ir = int(line.split()[1])
                elif line.startswith("cfn="):
                    cfn = line[4:].strip()
                elif line.startswith("calls="):
                    call = cfn in TIMER_OPS
                elif call and line[0].isdigit():
                    timer += int(line.split()[1])      # inclusive cost of the call
                    call = False
        res.append((path, ir or 0, timer))
    return res


def run_one(args, hw, n, run, workdir):
    tag = "n%d.r%d" % (n, run)
    t0 = time.monotonic()
    dev = Device(args, hw, n, workdir, tag)
    results = []           # (phase, frames, part index, counter delta, extra)
    try:
        dev.setup()
        k = args.k
        phases = [p for p in args.phases.split(",") if p]

        for ph in phases:
            if ph in ("rx-hit", "rx-hit-spread"):
                if ph == "rx-hit":
                    idx = list(range(min(HIT_SET, n)))
                elif n >= 2 * HIT_SET:
                    stride = n // HIT_SET
                    idx = [i * stride for i in range(HIT_SET)]
                else:
                    continue
                dev.send_rx(idx, len(idx))                 # warm the cache
                dev.marker("pre-" + ph)
                b, a = dev.send_rx(idx, k)
                dev.marker(ph)
                d = delta(b, a)
                ok = d.get("cache_hits", 0) == k and d.get("rx_segments", 0) == k
                results.append((ph, k, len(dev.labels) - 1, d, ok))
            elif ph == "rx-miss":
                if n < 2 * MISS_SET:
                    continue
                # the top of the table, none of it in the hit sets
                hot = set(range(HIT_SET)) | {i * (n // HIT_SET) for i in range(HIT_SET)}
                idx = [i for i in range(n - 1, -1, -1) if i not in hot][:MISS_SET][::-1]
                dev.marker("pre-" + ph)
                b, a = dev.send_rx(idx, k)
                dev.marker(ph)
                d = delta(b, a)
                ok = d.get("cache_misses", 0) == k and d.get("rx_segments", 0) == k
                results.append((ph, k, len(dev.labels) - 1, d, ok))
            elif ph == "tx":
                dev.send_tx(1)                             # warm: entry cached
                dev.marker("pre-tx")
                b, a, got = dev.send_tx(k)
                dev.marker(ph)
                d = delta(b, a)
                d["wire_frames"] = got
                ok = (d.get("tx_frames", 0) == k and got == k and
                      d.get("tx_stores", 0) == k * PAYLOAD // 8)
                results.append((ph, k, len(dev.labels) - 1, d, ok))
            else:
                die("unknown phase " + ph)
        # the data really landed: one aperture's page holds the last payloads
        if any(r[0].startswith("rx") for r in results):
            if dev.q.memread(dev.data, 8) == bytes(8):
                die("n=%d: no payload reached guest memory" % n)
    finally:
        dev.stop()
    parts = read_parts(dev.out)
    if len(parts) < len(dev.labels):
        die("callgrind wrote %d parts, expected %d (%s)" % (len(parts), len(dev.labels), dev.out))
    rows = []
    for ph, frames, pi, d, ok in results:
        path, ir, timer = parts[pi]
        bad = drops(d)
        rows.append({"n": n, "phase": ph, "run": run, "frames": frames,
                     "instructions": ir, "ir_per_frame": ir / frames,
                     "timer_ir_per_frame": timer / frames,
                     "ir_per_frame_excl_timer": (ir - timer) / frames,
                     "cache_hits": d.get("cache_hits", 0),
                     "cache_misses": d.get("cache_misses", 0),
                     "checked": "ok" if ok and not bad else "FAIL %r" % d,
                     "part": path})
    print("device_cost: n=%d run %d: %s (%.0f s)" % (
        n, run, ", ".join("%s %.0f Ir/frame" % (r["phase"], r["ir_per_frame"]) for r in rows),
        time.monotonic() - t0), file=sys.stderr)
    return rows


def profile(part, frames, top=12):
    """
    Where a part's instructions go, per frame: self cost by function, and by
    source line of the device's own files (hw/net/apertnic/). Reads the
    uncompressed callgrind format written with --compress-strings=no
    --compress-pos=no; `callgrind_annotate --inclusive=yes PART` shows the
    same data call tree first.
    """
    by_fn, by_line = {}, {}
    fl = fi = fn = None
    after_calls = False
    with open(part) as f:
        for line in f:
            if line[0].isdigit():
                if after_calls:          # inclusive cost of a call: not self
                    after_calls = False
                    continue
                ln, ir = line.split()[:2]
                ir = int(ir)
                by_fn[fn] = by_fn.get(fn, 0) + ir
                src = fi or fl
                if src and "/apertnic/" in src:
                    key = "%s:%s" % (os.path.basename(src), ln)
                    by_line[key] = by_line.get(key, 0) + ir
            elif line.startswith("fl="):
                fl, fi = line[3:].strip(), None
            elif line.startswith(("fi=", "fe=")):
                fi = line[3:].strip()
                if fi == fl:
                    fi = None
            elif line.startswith("fn="):
                fn, fi = line[3:].strip(), None
            elif line.startswith("calls="):
                after_calls = True
    total = sum(by_fn.values()) or 1
    out = ["self Ir/frame  share  function"]
    for name, ir in sorted(by_fn.items(), key=lambda x: -x[1])[:top]:
        out.append("%13.1f %5.1f%%  %s" % (ir / frames, ir * 100 / total, name))
    out.append("")
    out.append("self Ir/frame  share  device source line (as built)")
    for key, ir in sorted(by_line.items(), key=lambda x: -x[1])[:top]:
        out.append("%13.1f %5.1f%%  %s" % (ir / frames, ir * 100 / total, key))
    return "\n".join(out)


def spread(v):
    med = statistics.median(v)
    return (max(v) - min(v)) / med * 100 if med else 0.0


def markdown(rows, runs):
    by = {}
    for r in rows:
        by.setdefault((r["n"], r["phase"]), []).append(r)
    order = ["rx-hit", "rx-hit-spread", "rx-miss", "tx"]
    ns = sorted({r["n"] for r in rows})
    med = lambda rs, c: statistics.median([r[c] for r in rs])
    out = ["| phase | apertures (N) | Ir/frame | run spread | of which timer ops "
           "| Ir/frame without timer ops | run spread | hits | misses | checks |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for ph in order:
        for n in ns:
            rs = by.get((n, ph))
            if not rs:
                continue
            out.append("| %s | %d | %.0f | %.2f%% | %.0f | %.0f | %.2f%% | %d | %d | %s |" % (
                ph, n, med(rs, "ir_per_frame"), spread([r["ir_per_frame"] for r in rs]),
                med(rs, "timer_ir_per_frame"), med(rs, "ir_per_frame_excl_timer"),
                spread([r["ir_per_frame_excl_timer"] for r in rs]),
                rs[0]["cache_hits"], rs[0]["cache_misses"],
                "ok" if all(r["checked"] == "ok" for r in rs) else "FAIL"))
    lines = ["", "Ir/frame: medians of %d run(s); instructions callgrind counted inside the "
             "core's entry points per frame (tx: 8 writeq + FENCE). Timer ops = the glue's "
             "timer_mod/timer_del calls (QEMU timer list and main-loop wake-ups)." % runs, ""]
    # target: per-frame cost on hits within 10% between the smallest and largest N
    for ph in ("rx-hit", "rx-hit-spread", "tx"):
        meds = {n: med(by[(n, ph)], "ir_per_frame") for n in ns if (n, ph) in by}
        if len(meds) >= 2:
            lo_n, hi_n = min(meds), max(meds)
            ch = (meds[hi_n] - meds[lo_n]) / meds[lo_n] * 100
            lines.append("- %s: N=%d -> N=%d: %+.1f%% per frame (target: within 10%%: %s)"
                         % (ph, lo_n, hi_n, ch, "met" if abs(ch) <= 10 else "NOT met"))
    if runs > 1:
        for col, what in (("ir_per_frame", "all counted"),
                          ("ir_per_frame_excl_timer", "without timer ops")):
            worst = max(spread([r[col] for r in rs]) for rs in by.values())
            lines.append("- repeatability (%s): largest spread between %d runs: %.3f%% "
                         "(target: within 1%%: %s)" % (what, runs, worst,
                                                       "met" if worst <= 1 else "NOT met"))
    return "\n".join(out + lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qemu", default=os.path.join(TOP, "build", "qemu-build",
                                                   "qemu-system-x86_64"))
    ap.add_argument("--firmware", default=os.path.join(TOP, "build", "firmware"),
                    help="directory with bios-256k.bin (QEMU's -L); '' = QEMU's default")
    ap.add_argument("--n", default="1,1024,65536",
                    help="incoming apertures programmed, comma-separated")
    ap.add_argument("-k", "--k", type=int, default=2000, help="frames per phase")
    ap.add_argument("--phases", default="rx-hit,rx-hit-spread,rx-miss,tx")
    ap.add_argument("--runs", type=int, default=2, help="runs per N (repeatability)")
    ap.add_argument("--csv", help="write CSV here (default: stdout)")
    ap.add_argument("--markdown", help="write the Markdown table here ('-' = stdout)")
    ap.add_argument("--workdir", help="keep callgrind files here (default: temporary)")
    ap.add_argument("--profile", metavar="FILE",
                    help="append, per phase of the largest N (last run), the self cost "
                         "per frame by function and by device source line ('-' = stdout)")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per step")
    ap.add_argument("--start-timeout", type=int, default=300)
    args = ap.parse_args()

    if args.k < 1 or args.runs < 1:
        die("--k and --runs must be >= 1")
    ns = [int(x) for x in args.n.split(",") if x]
    if not os.access(args.qemu, os.X_OK):
        die("no QEMU at %s" % args.qemu)
    for tool in ("valgrind", "callgrind_annotate"):
        if subprocess.run(["sh", "-c", "command -v " + tool], capture_output=True).returncode:
            die("%s not found (scripts/install-deps installs valgrind)" % tool)
    if args.firmware and not os.path.exists(os.path.join(args.firmware, "bios-256k.bin")):
        args.firmware = ""
    hw = Hw(HW_H)

    tmp = None
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        workdir = args.workdir
    else:
        tmp = tempfile.TemporaryDirectory(prefix="apn-bench-")
        workdir = tmp.name
    # Every run uses the same binary even if QEMU is rebuilt meanwhile: a hard
    # link (or copy) of it, with the firmware directory named explicitly.
    snap = os.path.join(workdir, "qemu-system-x86_64.snapshot")
    if os.path.exists(snap):
        os.unlink(snap)
    try:
        os.link(args.qemu, snap)
    except OSError:
        shutil.copy2(args.qemu, snap)
    args.qemu_run = snap
    rows = []
    try:
        for run in range(1, args.runs + 1):
            for n in ns:
                rows += run_one(args, hw, n, run, workdir)
    finally:
        os.unlink(snap)

    cols = ["n", "phase", "run", "frames", "instructions", "ir_per_frame",
            "timer_ir_per_frame", "ir_per_frame_excl_timer",
            "cache_hits", "cache_misses", "checked"]
    csv = [",".join(cols)]
    for r in rows:
        csv.append(",".join("%.1f" % r[c] if c.startswith(("ir_", "timer_")) else str(r[c]).replace(",", ";")
                            for c in cols))
    text = "\n".join(csv) + "\n"
    if args.csv:
        with open(args.csv, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    if args.markdown:
        md = markdown(rows, args.runs) + "\n"
        if args.markdown == "-":
            sys.stdout.write(md)
        else:
            with open(args.markdown, "w") as f:
                f.write(md)
    if args.profile:
        big = max(ns)
        for r in rows:
            if r["n"] == big and r["run"] == args.runs:
                text = ("\n#### %s, N=%d: where the instructions go (%s)\n\n```\n%s\n```\n"
                        % (r["phase"], big, os.path.basename(r["part"]),
                           profile(r["part"], r["frames"])))
                if args.profile == "-":
                    sys.stdout.write(text)
                else:
                    with open(args.profile, "a") as f:
                        f.write(text)
    failed = [r for r in rows if r["checked"] != "ok"]
    if failed:
        for r in failed:
            print("device_cost: n=%d %s run %d: counters do not match: %s"
                  % (r["n"], r["phase"], r["run"], r["checked"]), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
