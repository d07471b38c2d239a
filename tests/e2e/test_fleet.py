#!/usr/bin/env python3
"""End-to-end tests of relayed gossip over partial views (issue 14): a
node needs --peer to a few neighbours only, batches reach everyone through
relays, a node that only dials out is a full member, a relay cannot alter
a batch unnoticed, and a relay that dies mid-stream loses no write. Real
lwwd processes on ipc:// in a temporary directory."""

import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lwwtest import (LWWFORGE, ClusterTest, forge_key,  # noqa: E402
                     start_links, wait_until)
import lwwtest  # noqa: E402

def holds(nodes, key, value):
    return all(n.lookup(key) == value for n in nodes)


class Chain(ClusterTest):
    def test_chain_of_ten_converges_end_to_end(self):
        # Node i dials node i-1 only. Periodic repair is off, so only
        # relayed gossip can carry a write nine hops.
        c = self.cluster(10)
        start_links(c, [[]] + [[i - 1] for i in range(1, 10)],
              ["--repair-interval", "0"])
        first, last = c.nodes[0], c.nodes[-1]
        self.assertEqual(first.ctl("add", "from-first", "a").rc, 0)
        self.assertEqual(last.ctl("add", "from-last", "z").rc, 0)
        wait_until(lambda: holds(c.nodes, "from-first", "a") and
                   holds(c.nodes, "from-last", "z"), timeout=30,
                   what="both writes on all ten nodes")
        for n in c.nodes:
            g = n.stats()["gossip"]
            want = 1 if n in (first, last) else 2
            self.assertGreaterEqual(g["delivered"], want, (n.name, g))


class DialOnly(ClusterTest):
    def test_node_nobody_dials_gets_and_gives_every_write(self):
        # A <- B <- C: C dials B, nobody dials C (as a shop behind NAT).
        c = self.cluster(3)
        a, b, cc = c.nodes
        start_links(c, [[], [0], [1]], ["--repair-interval", "0"])
        self.assertEqual(cc.ctl("add", "from-c", "c").rc, 0)
        self.assertEqual(a.ctl("add", "from-a", "a").rc, 0)
        wait_until(lambda: a.lookup("from-c") == "c" and
                   cc.lookup("from-a") == "a", timeout=20,
                   what="C's write on A and A's on C")
        self.assertEqual(b.lookup("from-a"), "a")
        self.assertEqual(b.lookup("from-c"), "c")


class RelayTest(ClusterTest):
    """A -> lwwforge relay -> B: B's only --peer is the relay, and B's
    repair (the relay URL's .sync) reaches nobody, so every batch B gets
    from A has passed through the relay."""

    def relay(self, mode):
        c = self.cluster(2)
        a, b = c.nodes
        key = forge_key(c, True, "relay")
        listen = f"ipc://{c.dir}/relay.gossip"
        a.peers = []  # the relay dials A
        b.peers = [listen]
        a.start()
        self.log = open(os.path.join(c.dir, "relay.log"), "wb")
        self.proc = subprocess.Popen([LWWFORGE, "relay", listen, a.gossip,
                                      key, mode], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        b.start()
        # The relay is a neighbour of both (it sends heartbeats).
        for n in (a, b):
            wait_until(lambda: n.stats()["gossip"]["neighbours"] >= 1,
                       timeout=20, what=f"{n.name} sees the relay")
        return a, b

    def tearDown(self):
        p = getattr(self, "proc", None)
        if p is not None:
            p.kill()
            p.wait()
            self.log.close()
        super().tearDown()



class TamperingRelay(RelayTest):
    def test_relay_passing_batches_delivers(self):
        # The control: the same layout with an honest relay delivers,
        # so the refusal below is the tampering's doing.
        a, b = self.relay("pass")
        self.assertEqual(a.ctl("add", "t", "hello").rc, 0)
        wait_until(lambda: b.lookup("t") == "hello", timeout=20,
                   what="the relayed write on B")
        self.assertEqual(b.stats()["rejected"]["bad_signature"], 0)

    def test_tampered_batch_is_refused(self):
        a, b = self.relay("tamper")
        self.assertEqual(a.ctl("add", "t", "hello").rc, 0)
        wait_until(lambda: b.stats()["rejected"]["bad_signature"] >= 1,
                   timeout=20, what="B refusing the tampered batch")
        # 'h' ^ 1 is 'i': the altered value must never be stored.
        time.sleep(1)
        self.assertNotEqual(b.lookup("t"), "iello")
        self.assertIsNone(b.lookup("t"))
        self.assertEqual(b.stats()["writes_remote"], 0)


class LostFirstBatch(RelayTest):
    """A -> lwwforge relay (dropfirst) -> B, with the relay passing B's
    messages back up: A's first batch is lost on the way and only a graft
    through the relay can bring it (B's repair reaches nobody)."""

    # A known limit (found by scripts/fleet, README "Fleets"): B's window
    # of A starts at the first batch it hears, so a first batch lost on
    # the way is announced (lag 1) but left to repair, and here B has no
    # repair path to A. Starting the window lower and grafting what lies
    # below cost the 200-node fleet more than it saved (grafts of batches
    # never sent, at every first contact); kept as an expected failure so
    # that a fix shows (an unexpected success fails the run).
    @unittest.expectedFailure
    def test_origin_first_batch_lost_on_a_hop_is_grafted(self):
        a, b = self.relay("dropfirst")
        self.assertEqual(a.ctl("add", "first", "1").rc, 0)
        self.assertEqual(a.ctl("add", "second", "2").rc, 0)
        wait_until(lambda: b.lookup("second") == "2", timeout=20,
                   what="A's second write on B")
        wait_until(lambda: b.lookup("first") == "1", timeout=20,
                   what="A's first write on B, grafted")


class RelayKilled(ClusterTest):
    def test_relay_killed_mid_stream_loses_no_write(self):
        # A <- B <- C: B is C's only way to A. B dies (SIGKILL) a quarter
        # of the way through 200 writes on A and returns 2 s later.
        c = self.cluster(3)
        a, b, cc = c.nodes
        start_links(c, [[], [0], [1]])
        total, killed_at, back = 200, 50, None
        t0 = time.monotonic()
        for i in range(total):
            # A steady 50 writes a second.
            time.sleep(max(0, t0 + i / 50 - time.monotonic()))
            if i == killed_at:
                b.kill9()
                back = time.monotonic() + 2
            if back is not None and time.monotonic() >= back:
                b.start()
                back = None
            r = a.ctl("add", f"k{i:03d}", str(i))
            self.assertEqual(r.rc, 0, r)
        if back is not None:
            time.sleep(max(0, back - time.monotonic()))
            b.start()
        wait_until(lambda: cc.stats()["keys"] == total, timeout=60,
                   what=f"C holding all {total} keys")
        for i in range(0, total, 7):
            self.assertEqual(cc.lookup(f"k{i:03d}"), str(i))


if __name__ == "__main__":
    lwwtest.main()
