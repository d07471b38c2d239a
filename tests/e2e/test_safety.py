#!/usr/bin/env python3
"""End-to-end tests of lwwd's threads, clocks and shutdown: a wall clock
stepped back stalls no timer, a flood of badly signed gossip does not
stall local writes, a slow checkpoint does not stop lookups on the same
API, a failed gossip receive does not end the subscriber, and SIGTERM
under gossip, repair, writes and metrics scrapes exits cleanly.

Slow or rare conditions are made on demand by tests/e2e/lwwshim.c,
preloaded into lwwd (see that file): slow signature checks, a slow disk
under the store, receive timeouts, and waits that honour a stepped wall
clock as the kernel does."""

import glob
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lwwtest  # noqa: E402
from lwwtest import (LWWFORGE, SANITIZER_MARKS, ClusterTest,  # noqa: E402
                     ctl, wait_until)

LWWSHIM = os.environ.get("LWWSHIM", "build/tests/liblwwshim.so")
LWWBENCH = os.path.join(os.environ.get("LWW_BUILD_DIR", "build"), "tests",
                        "lwwbench")
FAKETIME = (glob.glob("/usr/lib/*/faketime/libfaketime.so.1") or [None])[0]


def preload(*libs, **env):
    """A command prefix that runs lwwd (same pid: env execs it) with libs
    preloaded and env set."""
    asan = os.environ.get("ASAN_OPTIONS", "")
    asan = (asan + ":" if asan else "") + "verify_asan_link_order=0"
    return (["env", "LD_PRELOAD=" + ":".join(libs), "ASAN_OPTIONS=" + asan] +
            [f"{k}={v}" for k, v in env.items()])


def segments(node):
    return sorted(f for f in os.listdir(node.data) if f.startswith("wal-"))


def timed(fn, *args, **kw):
    t0 = time.monotonic()
    r = fn(*args, **kw)
    return r, time.monotonic() - t0


@unittest.skipIf(FAKETIME is None, "libfaketime not installed "
                 "(Debian faketime; scripts/deps installs it)")
class WallClockStepBack(ClusterTest):
    """n1's wall clock jumps back an hour while it runs (libfaketime,
    offset read from a file at every call); the monotonic clock does not.
    Every timer of the node must keep its pace. (libfaketime alone would
    hide the bug: it moves every wait's deadline to the real clock.)"""

    def start(self, repair_ms):
        c = self.cluster(2)
        n1, n2 = c.nodes
        self.clock = os.path.join(c.dir, "clock")
        with open(self.clock, "w") as f:
            f.write("+0\n")
        # lwwshim first: it makes waits honour the faked wall clock.
        n1.wrap = preload(LWWSHIM, FAKETIME,
                          FAKETIME_TIMESTAMP_FILE=self.clock,
                          FAKETIME_NO_CACHE=1, DONT_FAKE_MONOTONIC=1,
                          LWW_SHIM_WALL_WAITS=1)
        for n in c.nodes:
            # The step is about timed waits, not clocks: a drift bound
            # wider than the step keeps the clock fence (e2e_clock) out.
            n.extra = ["--repair-interval", str(repair_ms),
                       "--max-drift", str(2 * 3600 * 1000)]
        c.start()
        return n1, n2

    def step_back(self):
        with open(self.clock, "w") as f:
            f.write("-3600\n")

    def test_heartbeats_checkpoints_and_reads_keep_their_pace(self):
        # No periodic repair: its rounds would force checkpoints (they
        # wait for one), hiding a writer whose idle wait stalled.
        n1, n2 = self.start(0)
        wait_until(lambda: n1.ctl("--json", "peers").json()[0]
                   ["last_repair_ms_ago"] >= 0, what="n1's first round")
        ck0 = n1.stats()["checkpoint"]["count"]
        # The first write in a while is checkpointed at once; the next,
        # so soon after, only once the writer has been idle for 1 s.
        self.assertEqual(n1.ctl("add", "first", "x").rc, 0)
        self.assertEqual(n1.ctl("add", "second", "x").rc, 0)
        seg = segments(n1)[-1]
        # The clock steps back while the writer waits for that second,
        # and while the heartbeat thread waits for its next beat.
        time.sleep(0.3)
        self.step_back()
        hb0 = n2.stats()["heartbeats_received"]

        # The idle checkpoint comes without any reader asking for it:
        # the segment holding the write is applied and removed (no
        # stats of n1, list or repair here: each asks for a checkpoint).
        wait_until(lambda: seg not in segments(n1), timeout=15,
                   what=f"idle checkpoint of {seg}")
        self.assertGreater(n1.stats()["checkpoint"]["count"], ck0)

        # n2 keeps hearing n1 once a second.
        wait_until(lambda: n2.stats()["heartbeats_received"] >= hb0 + 4,
                   timeout=15, what="heartbeats from n1 after the step")
        last = n2.ctl("--json", "peers").json()[0]["last_contact_ms_ago"]
        self.assertTrue(0 <= last < 3000, last)

        # n1's own view of its peer: times since, not negative.
        p = n1.ctl("--json", "peers").json()[0]
        self.assertTrue(0 <= p["last_contact_ms_ago"] < 3000, p)
        self.assertGreaterEqual(p["last_repair_ms_ago"], 0, p)

        # Writes after the step are checkpointed and read promptly.
        for i in range(5):
            self.assertEqual(n1.ctl("add", f"after{i}", "x").rc, 0)
        r, took = timed(n1.ctl, "--json", "stats")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.json()["keys"], 7)
        self.assertLess(took, 5)
        r, took = timed(n1.ctl, "list")
        self.assertEqual(len(r.out.splitlines()), 7, r)
        self.assertLess(took, 5)

    def test_repair_rounds_keep_their_pace(self):
        n1, n2 = self.start(300)

        def rounds():
            r = n1.stats()["repair"]
            return r["rounds"] + r["failed"]
        wait_until(lambda: rounds() >= 2, what="repair rounds")
        self.step_back()
        r0 = rounds()
        wait_until(lambda: rounds() >= r0 + 5, timeout=15,
                   what="repair rounds after the step")


def bench_adds(node, seconds):
    """One client adding in a closed loop (lwwbench: its own cost is
    small next to the node's); returns its JSON summary."""
    p = subprocess.run([LWWBENCH, "clients", node.api, "1", str(seconds),
                        "add", "1000"], capture_output=True, timeout=120)
    assert p.returncode == 0, p
    return json.loads(p.stdout)


class SignatureFlood(ClusterTest):
    VERIFY_MS = 200

    @unittest.skipUnless(os.path.exists(LWWBENCH), "lwwbench not built")
    def test_badly_signed_flood_does_not_stall_writes(self):
        # A trusted key (n2's; n2 itself never runs) floods n1 with
        # batches whose signature does not verify. Each check takes
        # VERIFY_MS (lwwshim), as a 2 MiB batch can on a small, busy
        # CPU; here it costs no CPU, so only a lock held across the
        # check can slow the writes. (On this machine a real 2 MiB check
        # takes 3-6 ms, and its CPU cost alone moves the median add
        # latency by as much as the lock did: too close to tell apart.)
        c = self.cluster(2, transport="tcp")
        n1, n2 = c.nodes
        fake = f"ipc://{c.dir}/forge.gossip"
        n1.peers = [fake]
        n1.extra = ["--fsync", "none", "--repair-interval", "0"]
        n1.wrap = preload(LWWSHIM, LWW_SHIM_VERIFY_MS=self.VERIFY_MS)
        n1.start()
        before = bench_adds(n1, 2)
        # One batch every VERIFY_MS + 20 ms: the checks follow each other
        # with short gaps, and none is left queued once the flood ends.
        flood = subprocess.Popen([LWWFORGE, fake, n2.keyfile, "badsig",
                                  "flood", "x", "100000",
                                  str(self.VERIFY_MS + 20)],
                                 stderr=subprocess.PIPE)
        try:
            wait_until(lambda: n1.stats()["rejected"]["bad_signature"] >= 2,
                       timeout=20, what="the flood reaching n1")
            bad0 = n1.stats()["rejected"]["bad_signature"]
            during = bench_adds(n1, 2)
            bad1 = n1.stats()["rejected"]["bad_signature"]
        finally:
            flood.kill()
            flood.wait()
        last = [-1]

        def drained():
            bad = n1.stats()["rejected"]["bad_signature"]
            same, last[0] = bad == last[0], bad
            return same
        wait_until(drained, step=self.VERIFY_MS * 2 / 1000,
                   what="the last batches checked")
        after = bench_adds(n1, 2)
        runs = (before, during, after)
        # The flood went on all along.
        self.assertGreaterEqual(bad1 - bad0,
                                2000 // (self.VERIFY_MS + 20) // 2)
        # Every add was acknowledged, and applied.
        self.assertEqual([r["errors"] for r in runs], [0, 0, 0], runs)
        self.assertEqual(n1.stats()["writes_local"],
                         sum(r["ops"] for r in runs), runs)
        # Against the slower of the two quiet runs around the flood (a busy
        # machine moves both): the latency of an add, and the time the
        # client lost. A closed-loop client sees a writer stalled for a
        # check as one slow add, so the stalls show in how many adds it
        # completed: a writer that waits for the checks completes about
        # 20 / (VERIFY_MS + 20) of the quiet runs' adds, 10% here.
        quiet = min(before["ops"], after["ops"])
        self.assertLessEqual(during["p50_us"],
                             3 * max(before["p50_us"], after["p50_us"]), runs)
        self.assertLessEqual(during["p99_us"],
                             10 * max(before["p99_us"], after["p99_us"]), runs)
        self.assertGreaterEqual(during["ops"], 0.4 * quiet, runs)


class SlowCheckpoint(ClusterTest):
    SYNC_MS = 1000

    @unittest.skipUnless(os.path.exists(LWWBENCH), "lwwbench not built")
    def test_lookups_answer_while_list_and_stats_wait(self):
        # Each sync of the store's file takes SYNC_MS (lwwshim), so a
        # checkpoint takes seconds; list and stats wait for it (they read
        # the store). Lookups on the same API must not wait with them.
        c = self.cluster(1, transport="tcp")
        n1 = c.nodes[0]
        n1.wrap = preload(LWWSHIM, LWW_SHIM_SYNC_MS=self.SYNC_MS,
                          LWW_SHIM_SYNC_MATCH="data.mdb")
        n1.start()
        # Lookups all along, on connections made before the stall.
        looker = subprocess.Popen([LWWBENCH, "clients", n1.api, "4", "4",
                                   "lookup", "100"], stdout=subprocess.PIPE)
        self.addCleanup(looker.kill)
        time.sleep(1)
        self.assertEqual(n1.ctl("add", "k", "v").rc, 0)
        slow = []

        def wait_for(cmd):
            r, took = timed(n1.ctl, "--json", cmd)
            slow.append((cmd, r, took))
        # More than nng has threads for its callbacks (2 per core).
        waiting = [threading.Thread(target=wait_for,
                                    args=("stats" if i % 2 else "list",))
                   for i in range(2 * (os.cpu_count() or 2) + 4)]
        for t in waiting:
            t.start()
        for t in waiting:
            t.join(60)
        out, _ = looker.communicate(timeout=60)
        self.assertEqual(looker.returncode, 0, out)
        looked = json.loads(out)
        for cmd, r, took in slow:
            self.assertEqual(r.rc, 0, (cmd, r))
            if cmd == "stats":
                self.assertEqual(r.json()["keys"], 1, r)
            else:
                self.assertEqual(r.json_lines()[0]["key"], "k", r)
        # The checkpoint was slow: someone waited for it.
        slowest = max(took for _, _, took in slow)
        self.assertGreaterEqual(slowest, self.SYNC_MS / 1000, slow)
        # Lookups went on meanwhile, each far quicker than that wait.
        self.assertEqual(looked["errors"], 0, looked)
        self.assertGreater(looked["ops"], 0, looked)
        self.assertLessEqual(looked["max_us"] / 1e6, slowest / 4,
                             (looked, slowest))


class SubscriberErrors(ClusterTest):
    def test_subscriber_survives_a_receive_timeout(self):
        # lwwshim gives every nng receive of n1 a 300 ms timeout, as a
        # receive timeout set on its sockets would: between n2's
        # heartbeats (1 s) n1's gossip receive fails with NNG_ETIMEDOUT,
        # the one error nng 1.5 delivers to a SUB receive besides close
        # and cancel. The subscriber must carry on.
        c = self.cluster(2)
        n1, n2 = c.nodes
        n1.wrap = preload(LWWSHIM, LWW_SHIM_RECV_TIMEOUT_MS=300)
        for n in c.nodes:
            n.extra = ["--repair-interval", "0"]  # gossip alone
        c.start()
        wait_until(lambda: "event=gossip_receive_failed" in n1.logtext(),
                   what="a gossip receive that timed out")
        hb = n1.stats()["heartbeats_received"]
        for i in range(3):
            self.assertEqual(n2.ctl("add", f"k{i}", "v").rc, 0)
            time.sleep(0.5)
        for i in range(3):
            wait_until(lambda: n1.lookup(f"k{i}") == "v", timeout=10,
                       what=f"k{i} gossiped to n1")
        wait_until(lambda: n1.stats()["heartbeats_received"] >= hb + 3,
                   timeout=15, what="heartbeats after the timeouts")
        self.assertIn('reason="Timed out"', n1.logtext())
        # Gossip brought them, not a repair round.
        self.assertEqual(n1.stats()["repair"]["keys_fetched"], 0)


class Load:
    """Background traffic until stop(): adds through lwwbench on every
    node, list/stats/peers/reload on every node, and curl scraping every
    node's metrics. Errors are expected (nodes stop); only the nodes'
    exit codes and logs are judged."""

    def __init__(self, nodes, metrics):
        self.stop_ = threading.Event()
        self.threads = []
        for n in nodes:
            self.spawn(self.adds, n)
            self.spawn(self.reads, n)
        for url in metrics:
            self.spawn(self.scrape, url)

    def spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self.threads.append(t)

    def adds(self, node):
        while not self.stop_.is_set():
            subprocess.run([LWWBENCH, "clients", node.api, "2", "1", "add",
                            "500"], capture_output=True, timeout=60)

    def reads(self, node):
        cmds = (("stats",), ("list",), ("peers",), ("reload",))
        i = 0
        while not self.stop_.is_set():
            ctl(*cmds[i % len(cmds)], api=node.api, timeout=60)
            i += 1

    def scrape(self, url):
        while not self.stop_.is_set():
            subprocess.run(["curl", "-s", "-o", "/dev/null", "-m", "5", url],
                           timeout=60)

    def stop(self):
        self.stop_.set()
        for t in self.threads:
            t.join(90)


class ShutdownUnderLoad(ClusterTest):
    CYCLES = 3

    @unittest.skipIf(shutil.which("curl") is None or
                     not os.path.exists(LWWBENCH), "needs curl and lwwbench")
    def test_sigterm_during_gossip_repair_writes_and_scrapes(self):
        # A stress test (the races it guards are a few instructions
        # wide): each cycle stops one node with SIGTERM while all three
        # write, gossip, run repair rounds every 100 ms, answer list,
        # stats, peers and reload, and serve metrics to curl. Each stop
        # must exit 0 without a sanitizer report, then the node comes
        # back for the next cycle.
        c = self.cluster(3, transport="tcp")
        urls = []
        for n in c.nodes:
            port = int(n.api.rsplit(":", 1)[1]) + 5
            urls.append(f"http://127.0.0.1:{port}/metrics")
            n.extra = ["--metrics", urls[-1], "--repair-interval", "100"]
        c.start()
        for cycle in range(self.CYCLES):
            victim = c.nodes[cycle % len(c.nodes)]
            load = Load(c.nodes, urls)
            try:
                wait_until(lambda: victim.stats()["writes_remote"] > 0 and
                           victim.stats()["repair"]["rounds"] > 0,
                           timeout=30, what="traffic on the victim")
                time.sleep(1)
                rc = victim.stop()
            finally:
                load.stop()
            text = victim.logtext()
            self.assertEqual(rc, 0, text[-3000:])
            for mark in SANITIZER_MARKS:
                self.assertNotIn(mark, text, text[-3000:])
            events = [l for l in text.splitlines() if " event=" in l]
            self.assertIn("event=stopped", events[-1])
            victim.start()


if __name__ == "__main__":
    lwwtest.main()
