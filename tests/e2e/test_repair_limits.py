#!/usr/bin/env python3
"""End-to-end tests of repair at the size limits: an entry with the
largest key (LWW_KEY_MAX, 1 KiB) and the largest value (LWW_VAL_MAX,
1 MiB) travels by gossip, and by anti-entropy alone to a node that joins
late with an empty store or lost its data directory, byte for byte. A
repair round that cannot make progress is reported at error level once
(not every round), with the peer and the reason, and counted. Rounds are
push-pull: a node that only dials out still gets the writes gossip lost
to the peer it dials."""

import hashlib
import os
import random
import shutil
import subprocess
import sys
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lwwtest  # noqa: E402
from lwwtest import (LWWFORGE, ClusterTest, ctl, forge_key,  # noqa: E402
                     wait_until)

KEY_MAX = 1024
VAL_MAX = 1024 * 1024
BIG_KEY = "big/" + "k" * (KEY_MAX - 8) + "/end"
# Seeded, so a failure can be replayed; random bytes hold NULs and
# newlines, so a lossy text path would show.
BIG_VAL = random.Random(17).randbytes(VAL_MAX)
ORDINARY = 300
REPAIR = ["--repair-interval", "500"]


def leaf(key):
    """The stored hash-tree leaf of a key: the top 16 bits of its bucket
    (BLAKE2b-128 of the key, core/digest.h)."""
    h = hashlib.blake2b(key.encode(), digest_size=16).digest()
    return int.from_bytes(h[:2], "big")


def same_leaf_keys():
    """Two keys of the largest size that fall in one leaf."""
    first = "leaf/a/" + "x" * (KEY_MAX - 7)
    want = leaf(first)
    for i in range(1 << 22):
        tail = f"/{i:08d}"
        k = "leaf/b/" + "y" * (KEY_MAX - 7 - len(tail)) + tail
        if leaf(k) == want:
            return first, k
    raise AssertionError("no second key in the same leaf")


def lookup_raw(node, key):
    """The value's exact bytes (lookup prints the value and a newline),
    or None."""
    r = ctl("lookup", key, api=node.api, timeout=60)
    if r.rc != 0 or not r.raw.endswith(b"\n"):
        return None
    return r.raw[:-1]


def listing(node):
    """Every key with its stamp and value, as the node lists them."""
    r = ctl("--json", "list", api=node.api, timeout=60)
    assert r.rc == 0, r
    return r.out


class MaxEntry(ClusterTest):
    def write_max_and_ordinary(self, node):
        self.assertEqual(len(BIG_KEY), KEY_MAX)
        r = node.ctl("add", BIG_KEY, "-", stdin=BIG_VAL)
        self.assertEqual(r.rc, 0, r)
        lines = "".join(f"o/{i:04d}\tv{i}\n" for i in range(ORDINARY))
        r = node.ctl("load", stdin=lines.encode())
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(lookup_raw(node, BIG_KEY), BIG_VAL)

    def converged(self, src, dst, timeout=90):
        """Waits until dst holds the largest entry byte for byte, then
        requires the same listing (keys, stamps, values) as src."""
        wait_until(lambda: lookup_raw(dst, BIG_KEY) == BIG_VAL,
                   timeout=timeout, step=0.2,
                   what=f"the 1 MiB value on {dst.name}")
        want = listing(src)
        wait_until(lambda: listing(dst) == want, timeout=timeout, step=0.2,
                   what=f"{dst.name} listing as {src.name}'s")
        s = dst.stats()
        self.assertEqual(s["keys"], ORDINARY + 1)
        self.assertNotIn("level=error", dst.logtext())

    def test_max_entry_travels_by_gossip(self):
        # No periodic repair: only the start-up round (an empty store,
        # before the write) and gossip.
        c = self.cluster(2, extra=["--repair-interval", "0"])
        c.start()
        n1, n2 = c.nodes
        self.write_max_and_ordinary(n1)
        self.converged(n1, n2)
        self.assertEqual(n2.stats()["repair"]["keys_fetched"], 0)
        self.assertNotIn("publish_failed", n1.logtext())

    def test_late_joiner_with_empty_store_gets_max_entry(self):
        c = self.cluster(3, extra=list(REPAIR))
        n1, n2, n3 = c.nodes
        n1.start()
        n2.start()
        self.write_max_and_ordinary(n1)
        self.converged(n1, n2)
        # n3 starts after the writes, and after n1 and n2 restarted: their
        # recent batches (what answers a graft) are gone, so only repair
        # can carry the writes to it.
        for n in (n1, n2):
            self.assertEqual(n.stop(), 0)
            n.start()
        n3.start()
        self.converged(n1, n3)
        s = n3.stats()
        self.assertGreaterEqual(s["repair"]["keys_fetched"], ORDINARY + 1)
        self.assertEqual(s["repair"]["stalled"], 0)

    def test_wiped_node_gets_max_entry_back(self):
        c = self.cluster(2, extra=list(REPAIR))
        c.start()
        n1, n2 = c.nodes
        self.write_max_and_ordinary(n1)
        self.converged(n1, n2)
        self.assertEqual(n2.stop(), 0)
        shutil.rmtree(n2.data)
        n2.start()
        self.converged(n1, n2)
        self.assertEqual(n2.stats()["repair"]["stalled"], 0)

    def test_leaf_larger_than_a_reply_comes_in_parts(self):
        # Two entries of the largest size in one leaf need two replies.
        # The asker holds a newer write to the first key: the peer's older
        # one never applies here, so only naming what each part brought
        # (not the asker's store) moves the peer on to the second key.
        k1, k2 = same_leaf_keys()
        self.assertEqual((len(k1), len(k2)), (KEY_MAX, KEY_MAX))
        old1, v2, new1 = (random.Random(s).randbytes(VAL_MAX)
                          for s in (1, 2, 3))
        c = self.cluster(2)
        n1, n2 = c.nodes
        for n in c.nodes:
            n.extra = list(REPAIR)
            n.peers = []
        n1.start()  # n1 never dials n2: it fetches nothing
        for k, v in ((k1, old1), (k2, v2)):
            r = n1.ctl("add", k, "-", stdin=v)
            self.assertEqual(r.rc, 0, r)
        n2.start()  # alone, so nothing reaches n1 or n2
        r = n2.ctl("add", k1, "-", stdin=new1)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(n2.stop(), 0)
        n2.peers = [n1.gossip]
        n2.start()
        wait_until(lambda: lookup_raw(n2, k2) == v2, timeout=90, step=0.2,
                   what="the second entry of the leaf on n2")
        self.assertEqual(lookup_raw(n2, k1), new1)
        # n1 never fetched; n2's rounds are push-pull, so the newer write
        # reaches n1 by push (n1's older one never replaced n2's).
        wait_until(lambda: lookup_raw(n1, k1) == new1, timeout=90,
                   step=0.2, what="the newer write pushed to n1")
        self.assertEqual(n2.stats()["repair"]["stalled"], 0)
        self.assertNotIn("level=error", n2.logtext())


class Stalled(ClusterTest):
    def test_round_without_progress_is_reported_once_and_counted(self):
        # A peer whose leaf replies carry no entry for a leaf that
        # differs (as a peer whose replies are capped below the entry's
        # size did): every round stalls there.
        c = self.cluster(1)
        n1 = c.nodes[0]
        fkey = forge_key(c, trusted=True)
        gossip = f"ipc://{c.dir}/forge.gossip"
        flog = open(os.path.join(c.dir, "forge.log"), "wb")
        p = subprocess.Popen([LWWFORGE, "sync", gossip + ".sync", fkey,
                              "stuck"], stderr=flog)
        try:
            metrics = f"http://127.0.0.1:{c.port_base + 5}/metrics"
            n1.peers = [gossip]
            n1.extra = ["--repair-interval", "200", "--metrics", metrics]
            c.start()
            wait_until(lambda: n1.stats()["repair"]["stalled"] >= 3,
                       timeout=60, what="stalled rounds counted")
            with urllib.request.urlopen(metrics, timeout=30) as m:
                text = m.read().decode()
        finally:
            p.kill()
            p.wait()
            flog.close()
        errors = [l for l in n1.logtext().splitlines()
                  if "level=error" in l]
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("event=repair_stalled", errors[0])
        self.assertIn("peer=forge", errors[0])
        self.assertIn("reason=", errors[0])
        self.assertIn("leaf", errors[0])
        s = n1.stats()["repair"]
        self.assertGreaterEqual(s["failed"], s["stalled"])
        # The forge knows no push-pull request (as an older lwwd): rounds
        # fall back to pull-only, said once at warn level.
        warns = [l for l in n1.logtext().splitlines()
                 if "event=repair_pull_only" in l]
        self.assertEqual(len(warns), 1, warns)
        self.assertIn("level=warn", warns[0])
        self.assertIn("# TYPE lww_repair_stalled_rounds_total counter", text)
        v = [l.split()[1] for l in text.splitlines()
             if l.startswith("lww_repair_stalled_rounds_total ")]
        self.assertEqual(len(v), 1, text)
        self.assertGreaterEqual(float(v[0]), 3)


class PushRepair(ClusterTest):
    def test_dial_only_node_pushes_what_gossip_lost(self):
        """A dials B (gossip and sync); B lists nobody, so B can never
        pull from A. A's writes made while B was down reach B only if
        A's repair rounds push them: A's gossip cache is empty after its
        restart, so B cannot graft them either."""
        c = self.cluster(2, extra=["--repair-interval", "1000"])
        a, b = c.nodes
        b.peers = []  # B dials nobody: A is behind NAT, say
        a.start()
        lines = "".join(f"p/{i:04d}\ta{i}\n" for i in range(200))
        r = a.ctl("load", stdin=lines.encode())
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(a.stop(), 0)
        b.start()
        # B writes ten of those keys later: its writes are newer, so the
        # older ones A pushes must not replace them (LWW), and A pulls
        # B's.
        for i in range(10):
            r = b.ctl("add", f"p/{i:04d}", f"b{i}")
            self.assertEqual(r.rc, 0, r)
        a.start()
        wait_until(lambda: b.stats()["keys"] == 200, timeout=60, step=0.2,
                   what="B holding A's 200 keys")
        want = listing(a)
        wait_until(lambda: listing(b) == want, timeout=60, step=0.2,
                   what="B listing as A's")
        for i in range(10):
            self.assertEqual(b.lookup(f"p/{i:04d}"), f"b{i}")
            self.assertEqual(a.lookup(f"p/{i:04d}"), f"b{i}")
        self.assertEqual(b.lookup("p/0199"), "a199")
        sa, sb = a.stats()["repair"], b.stats()["repair"]
        # What B took came by push: B runs no rounds of its own.
        self.assertGreaterEqual(sb["keys_taken"], 190)
        self.assertGreaterEqual(sa["keys_pushed"], 190)
        self.assertEqual(sb["rounds"] + sb["failed"], 0)
        self.assertEqual(sb["keys_fetched"], 0)
        # A has B's ten by its rounds, or a few by grafts from B's
        # gossip cache once their link is proved (either is right).
        self.assertGreaterEqual(
            sa["keys_fetched"] + a.stats()["gossip"]["delivered"], 10)
        self.assertNotIn("level=error", a.logtext() + b.logtext())
        self.assertNotIn("repair_pull_only", a.logtext())

    def test_push_of_a_leaf_larger_than_a_push(self):
        """Two entries of the largest size in one leaf take two pushes:
        the asker scans the leaf again for what it has not sent."""
        k1, k2 = same_leaf_keys()
        v1, v2 = (random.Random(s).randbytes(VAL_MAX) for s in (4, 5))
        c = self.cluster(2, extra=["--repair-interval", "1000"])
        a, b = c.nodes
        b.peers = []
        a.start()
        for k, v in ((k1, v1), (k2, v2)):
            r = a.ctl("add", k, "-", stdin=v)
            self.assertEqual(r.rc, 0, r)
        self.assertEqual(a.stop(), 0)
        b.start()
        a.start()
        wait_until(lambda: lookup_raw(b, k2) == v2, timeout=90, step=0.2,
                   what="the second entry of the leaf on B")
        self.assertEqual(lookup_raw(b, k1), v1)
        self.assertEqual(b.stats()["repair"]["keys_taken"], 2)
        self.assertEqual(a.stats()["repair"]["stalled"], 0)
        self.assertNotIn("level=error", a.logtext() + b.logtext())

    def test_push_keeps_only_trusted_node_ids(self):
        """A push is taken like fetched entries: signed by a trusted key,
        and an entry stamped with a node id of no trusted key is dropped
        and counted; an untrusted signer's push is refused whole."""
        c = self.cluster(1)
        n1 = c.nodes[0]
        fkey = forge_key(c, trusted=True)
        stranger = forge_key(c, trusted=False, name="stranger")
        c.start()
        sync = n1.gossip + ".sync"
        p = subprocess.run([LWWFORGE, "push", sync, stranger],
                           capture_output=True, timeout=60)
        self.assertNotEqual(p.returncode, 0, p)
        self.assertGreaterEqual(n1.stats()["repair"]["rejected"], 1)
        p = subprocess.run([LWWFORGE, "push", sync, fkey],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(p.stdout.decode().strip(), "taken 1")
        wait_until(lambda: n1.lookup("forge-push/own") == "x",
                   what="the pushed entry on n1")
        self.assertIsNone(n1.lookup("forge-push/other"))
        s = n1.stats()
        self.assertEqual(s["repair"]["keys_taken"], 1)
        self.assertEqual(s["rejected"]["forged_node_id"], 1)
        self.assertIn("repair_entries_refused", n1.logtext())


if __name__ == "__main__":
    lwwtest.main()
