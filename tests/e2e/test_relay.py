#!/usr/bin/env python3
"""End-to-end tests of relayed gossip (gossip.c): batches cross nodes that
do not list each other, links that carry duplicates turn lazy so a cycle
delivers each batch about once, and a node whose data was wiped (same
key, batches numbered anew) is still relayed."""

import os
import shutil
import subprocess
import time
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lwwtest import (LWWFORGE, ClusterTest, forge_key,  # noqa: E402
                     gossip, start_links, wait_until)


def send_link(c, node, name, data, wait=1):
    """Sends data once on node's gossip link, from a connection that never
    says who it is (nngcat), and keeps that connection `wait` seconds (a
    client that exits at once may close before its message left)."""
    path = os.path.join(c.dir, name)
    with open(path, "wb") as f:
        f.write(data)
    p = subprocess.Popen(["nngcat", "--pair1", "--dial", node.gossip,
                          "--file", path, "--raw"],
                         stdout=subprocess.DEVNULL)
    time.sleep(wait)
    p.kill()
    p.wait()


class Relay(ClusterTest):
    def test_wiped_node_is_still_relayed(self):
        # n1 <- n2 <- n3: n3's writes reach n1 only through n2, and with
        # periodic repair off (it would hide a gossip failure), only by
        # gossip. After n3's data is wiped and it starts again with the
        # same key, its new batches must not look like ones n2 has seen.
        c = self.cluster(3, extra=["--repair-interval", "0"])
        start_links(c, [[], [0], [1]])
        n1, n2, n3 = c.nodes
        for i in range(5):
            self.assertEqual(n3.ctl("add", f"old{i}", "x").rc, 0)
        wait_until(lambda: n1.lookup("old4") == "x", timeout=20,
                   what="n3's writes on n1 through n2")
        self.assertEqual(n3.stop(), 0)
        shutil.rmtree(n3.data)
        n3.start()
        wait_until(lambda: gossip(n3)["neighbours"] == 1, timeout=20,
                   what="n3 back on the link")
        self.assertEqual(n3.ctl("add", "new", "after-wipe").rc, 0)
        wait_until(lambda: n1.lookup("new") == "after-wipe", timeout=20,
                   what="the wiped node's write on n1")
        self.assertEqual(n2.lookup("new"), "after-wipe")

    def test_cycle_prunes_to_a_tree(self):
        # Three nodes that all dial each other: every pair has two
        # connections and keeps one as its link (neighbours: 2), and a
        # cycle, so flooding would hand each node two copies of every
        # batch. Duplicates make links lazy: after a few batches each
        # node gets about one copy of each.
        c = self.cluster(3)
        n1, n2, n3 = c.nodes
        url = f"http://127.0.0.1:{c.port_base + 5}/metrics"
        n2.extra = ["--metrics", url]
        start_links(c, [[j for j in range(3) if j != i] for i in range(3)])
        for i in range(10):
            self.assertEqual(n1.ctl("add", f"warm{i}", "x").rc, 0)
        wait_until(lambda: all(n.lookup("warm9") == "x" for n in c.nodes),
                   timeout=20, what="warm-up")
        before = {n.name: gossip(n) for n in (n2, n3)}
        for i in range(40):
            self.assertEqual(n1.ctl("add", f"k{i}", "y").rc, 0)
        wait_until(lambda: all(n.lookup("k39") == "y" for n in c.nodes),
                   timeout=20, what="40 writes everywhere")
        for n in (n2, n3):
            b, a = before[n.name], gossip(n)
            delivered = a["delivered"] - b["delivered"]
            copies = a["copies_received"] - b["copies_received"]
            self.assertGreaterEqual(delivered, 40, a)
            # One copy each, and a few more while a link turns lazy.
            self.assertLessEqual(copies, delivered * 1.5, (b, a))
        self.assertGreater(sum(gossip(n)["lazy"] for n in c.nodes), 0)
        self.assertGreater(sum(gossip(n)["prunes_sent"] for n in c.nodes),
                           0)
        # The same counters, per origin too, on the metrics endpoint.
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
        got = {}
        for line in text.splitlines():
            if not line.startswith("#") and " " in line:
                name, value = line.rsplit(" ", 1)
                got[name] = float(value)
        copies = got['lww_peer_copies_total{peer="n1"}']
        self.assertGreaterEqual(copies, 50)
        self.assertGreaterEqual(got["lww_gossip_delivered_total"], 50)
        self.assertGreaterEqual(got["lww_gossip_copies_received_total"],
                                got["lww_gossip_delivered_total"] +
                                got["lww_gossip_duplicates_total"])

    def test_long_gap_is_grafted_in_full(self):
        # n2 dials n1. While n2 is down n1 writes 800 batches; back, n2
        # learns from n1's announcements what it missed and grafts all of
        # it from n1's recent batches, 256 at a time, none given up. n1's
        # sync socket is not where n2 looks for it, so nothing comes by
        # repair.
        c = self.cluster(2)
        n1, n2 = c.nodes
        n1.extra = ["--sync", f"ipc://{c.dir}/n1.elsewhere"]
        start_links(c, [[], [0]])
        self.assertEqual(n1.ctl("add", "first", "1").rc, 0)
        wait_until(lambda: n2.lookup("first") == "1", what="first")
        self.assertEqual(n2.stop(), 0)
        for i in range(800):
            r = n1.ctl("add", f"gap{i}", str(i))
            self.assertEqual(r.rc, 0, r)
        n2.start()
        wait_until(lambda: n2.stats()["keys"] == 801, timeout=60,
                   what="every batch of the gap on n2")
        g2, g1 = gossip(n2), gossip(n1)
        self.assertEqual(g2["given_up"], 0, g2)
        self.assertGreaterEqual(g2["grafts_sent"], 4, g2)
        self.assertGreaterEqual(g1["grafts_served"], 800, g1)
        self.assertEqual(n2.lookup("gap799"), "799")


class HostileLink(ClusterTest):
    def test_malformed_link_messages_from_a_stranger(self):
        # A connector that never says who it is sends link messages: a
        # bundle whose length fields lie, an IHAVE, a GRAFT and a PRUNE.
        # The node counts the bundle as malformed, ignores the rest (they
        # are obeyed only from a known neighbour), and keeps serving.
        c = self.cluster(2)
        c.start()
        n1, n2 = c.nodes
        msgs = {
            "bundle": bytes.fromhex("0106" "03000000" "e8030000"),
            "ihave": bytes.fromhex("0103" "01000000") + (7).to_bytes(8,
                     "little") + (1 << 62).to_bytes(8, "little"),
            "graft": bytes.fromhex("0105" "01000000") + bytes(8) +
                     (1).to_bytes(8, "little") + (9).to_bytes(8, "little"),
            "prune": bytes.fromhex("0104"),
        }
        before = n1.stats()["rejected"]["malformed"]
        for name, data in msgs.items():
            send_link(c, n1, name, data)
        wait_until(lambda: n1.stats()["rejected"]["malformed"] > before,
                   what="the lying bundle counted")
        self.assertIsNotNone(n1.proc)
        self.assertIsNone(n1.proc.poll(), "n1 died")
        # Gossip still flows both ways.
        self.assertEqual(n2.ctl("add", "after", "1").rc, 0)
        wait_until(lambda: n1.lookup("after") == "1", what="gossip")
        self.assertEqual(n1.ctl("add", "back", "2").rc, 0)
        wait_until(lambda: n2.lookup("back") == "2", what="gossip back")

    def test_replayed_heartbeat_proves_nothing(self):
        # An address n2 dials (a --peer of n2 the attacker holds) records
        # the signed heartbeat n2 answers its HELLO with, and presents it
        # to n1 as if it were n2, with an announcement of a batch of n2
        # far beyond anything n2 sent. n1 sent that connection a nonce of
        # its own, so the heartbeat is refused (counted), the connection
        # stays a stranger's, and the announcement is ignored: nothing is
        # grafted. (Before HELLO, a replayed heartbeat made the stranger
        # n2's neighbour.)
        c = self.cluster(2, extra=["--repair-interval", "0"])
        n1, n2 = c.nodes
        trap = f"ipc://{c.dir}/trap.gossip"
        n2.peers = n2.peers + [trap]
        proof = os.path.join(c.dir, "n2.proof")
        rec = subprocess.Popen([LWWFORGE, "record", "listen", trap,
                                "ab" * 16, proof], stderr=subprocess.PIPE)
        c.start()
        self.assertEqual(rec.wait(timeout=60), 0, rec.stderr.read())
        rec.stderr.close()
        self.assertEqual(n2.ctl("add", "before", "1").rc, 0)
        wait_until(lambda: n1.lookup("before") == "1", what="gossip")
        with open(proof, "rb") as f:
            hb = f.read()
        origin = int(n2.stats()["node"], 16)
        bundle = (bytes.fromhex("0106" "02000000") +
                  len(hb).to_bytes(4, "little") + hb +
                  len(ihave(origin)).to_bytes(4, "little") + ihave(origin))
        before = gossip(n1)
        send_link(c, n1, "replay", bundle, wait=2)
        wait_until(lambda: n1.stats()["rejected"]["unproven"] >= 1,
                   what="the replayed heartbeat refused")
        time.sleep(1)  # a graft would go out 100 ms after the claim
        after = gossip(n1)
        self.assertEqual(after["grafts_sent"], before["grafts_sent"])
        self.assertEqual(after["neighbours"], 1)
        self.assertEqual(n2.ctl("add", "after", "2").rc, 0)
        wait_until(lambda: n1.lookup("after") == "2", what="gossip")

    def test_a_stranger_who_dials_gets_no_proof(self):
        # A node answers a HELLO only on a connection it dialled, or once
        # the dialler proved to be a trusted node. Else a stranger could
        # dial n1 and n2, pass n1's nonce to n2 in a HELLO of its own and
        # carry n2's proof back to n1, and any connector could make a
        # node sign on demand.
        c = self.cluster(1)
        c.start()
        n1 = c.nodes[0]
        r = subprocess.run([LWWFORGE, "record", "dial", n1.gossip,
                            "cd" * 16, os.path.join(c.dir, "none")],
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn(b"no answer to the HELLO", r.stderr)

    def test_a_lost_hello_is_sent_again(self):
        # A HELLO (or the proof answering it) can be lost on a busy
        # connection: the node asks again every second until the other
        # end proves who it is. lwwforge ignores the first HELLO; it is
        # still taken for the trusted neighbour it is.
        c = self.cluster(1)
        key = forge_key(c, True, "late")
        c.start()
        n1 = c.nodes[0]
        claim = os.path.join(c.dir, "claim")
        with open(claim, "wb") as f:
            f.write(ihave(0x1234))
        late = subprocess.Popen([LWWFORGE, "link", n1.gossip, key, claim,
                                 "late"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE)
        try:
            self.assertEqual(late.stdout.readline(), b"sent\n")
            wait_until(lambda: gossip(n1)["neighbours"] == 1,
                       what="n1 knows lwwforge by its second HELLO")
        finally:
            late.stdin.close()
            late.wait(timeout=30)
            late.stdout.close()

    def test_false_announcement_is_given_up(self):
        # A trusted neighbour (lwwforge, proving its own key) announces a
        # batch of n2 far beyond anything n2 sent. n1 grafts it, gets
        # nothing, and gives up: passing over only what it has seen of
        # n2, so n2's next batches still arrive by gossip (repair is off).
        c = self.cluster(2, extra=["--repair-interval", "0"])
        key = forge_key(c, True, "liar")
        c.start()
        n1, n2 = c.nodes
        self.assertEqual(n2.ctl("add", "before", "1").rc, 0)
        wait_until(lambda: n1.lookup("before") == "1", what="gossip")
        claim = os.path.join(c.dir, "claim")
        with open(claim, "wb") as f:
            f.write(ihave(int(n2.stats()["node"], 16)))
        liar = subprocess.Popen([LWWFORGE, "link", n1.gossip, key, claim],
                                stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE)
        try:
            self.assertEqual(liar.stdout.readline(), b"sent\n")
            # Three grafts 500 ms apart, then n1 gives up on the claim.
            wait_until(lambda: gossip(n1)["grafts_sent"] >= 3, timeout=15,
                       what="n1 asks for the announced batch")
            time.sleep(2)  # the give-up and the repair round it starts
            fetched = n1.stats()["repair"]["keys_fetched"]
            delivered = gossip(n1)["delivered"]
            for i in range(3):
                self.assertEqual(n2.ctl("add", f"after{i}", "2").rc, 0)
            wait_until(lambda: n1.lookup("after2") == "2", timeout=15,
                       what="n2's later writes on n1")
            # ... by gossip, not by a repair round.
            self.assertGreaterEqual(gossip(n1)["delivered"], delivered + 3)
            self.assertEqual(n1.stats()["repair"]["keys_fetched"], fetched)
        finally:
            liar.stdin.close()
            liar.wait(timeout=30)
            liar.stdout.close()


def ihave(origin, seq=1 << 62):
    """An IHAVE: "I hold origin's batches up to seq"."""
    return (bytes.fromhex("0103" "01000000") + origin.to_bytes(8, "little") +
            seq.to_bytes(8, "little"))

if __name__ == "__main__":
    import lwwtest
    lwwtest.main()
