#!/usr/bin/env python3
"""Integrity tests: bytes of a stopped node's store file are changed on
disk, as bit rot would, and the node restarted. A damaged record is never
served (lookup exits 4 and says why), list goes on past it and exits
non-zero at the end, the scrub finds damage nobody reads, and in every
case a healthy peer's copy replaces the damaged one through repair."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lwwtest  # noqa: E402
from lwwtest import ClusterTest, wait_until  # noqa: E402

FAST = ["--repair-interval", "500"]


def rot(path, needle):
    """Flips one byte inside every copy of needle in the file at path
    (LMDB may keep older copies in pages it freed); returns how many."""
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        n, at = 0, data.find(needle)
        while at >= 0:
            data[at + len(needle) // 2] ^= 0x20
            n, at = n + 1, data.find(needle, at + 1)
        f.seek(0)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return n


class Integrity(ClusterTest):
    def setup_pair(self, n1_extra):
        """Two nodes holding the same keys; n1 stopped cleanly (so its
        store holds everything) and restarted after `damage`."""
        c = self.cluster(2)
        n1, n2 = c.nodes
        n1.extra = list(n1_extra)
        n2.extra = list(FAST)
        c.start()
        self.values = {f"k/{i:03d}": f"value number {i:03d} of the set"
                       for i in range(40)}
        self.values["rot/a"] = "ALPHA-" + "a" * 64 + "-ALPHA"
        self.values["rot/b"] = "BRAVO-" + "b" * 64 + "-BRAVO"
        for k, v in self.values.items():
            r = n1.ctl("add", k, v)
            self.assertEqual(r.rc, 0, r)
        for k, v in self.values.items():
            wait_until(lambda: n2.lookup(k) == v, what=f"{k} on n2")
        self.assertEqual(n1.stop(), 0)
        return c, n1, n2

    def test_damaged_value_is_refused_then_healed_from_a_peer(self):
        c, n1, n2 = self.setup_pair(FAST + ["--scrub-interval", "0"])
        data = os.path.join(n1.data, "data.mdb")
        self.assertGreaterEqual(rot(data, b"a" * 64), 1)
        n1.start()
        r = n1.ctl("lookup", "rot/a")
        # Either it is refused as damaged, or repair already replaced it
        # (then the damage must have been counted).
        if r.rc != 0:
            self.assertEqual(r.rc, 4, r)
            self.assertIn("damaged", r.err)
            self.assertIn("checksum", r.err)
            self.assertEqual(len(r.err.strip().splitlines()), 1, r)
        else:
            self.assertEqual(r.out[:-1], self.values["rot/a"])
        st = n1.stats()["integrity"]
        self.assertGreaterEqual(st["records_damaged"], 1, st)
        # Never served damaged: every answer is the true value or an error.
        wait_until(lambda: n1.lookup("rot/a") == self.values["rot/a"],
                   timeout=30, what="rot/a repaired from n2")
        self.assertGreaterEqual(n1.stats()["integrity"]["records_dropped"],
                                1)
        self.assertIn("event=record_damaged", n1.logtext())
        self.assertIn('key="rot/a"', n1.logtext())
        for k, v in self.values.items():
            self.assertEqual(n1.lookup(k), v, k)

    def test_list_goes_on_past_a_damaged_record(self):
        c, n1, n2 = self.setup_pair(["--repair-interval", "0",
                                     "--scrub-interval", "0"])
        self.assertEqual(n2.stop(), 0)  # nobody to repair from
        data = os.path.join(n1.data, "data.mdb")
        self.assertGreaterEqual(rot(data, b"b" * 64), 1)
        n1.start()
        r = n1.ctl("list")
        self.assertEqual(r.rc, 4, r)
        listed = r.out.splitlines()
        self.assertNotIn("rot/b", listed)
        self.assertEqual(sorted(listed),
                         sorted(k for k in self.values if k != "rot/b"))
        self.assertIn("1 stored record failed its checksum", r.err)
        self.assertEqual(len(r.err.strip().splitlines()), 1, r)
        # --json lists the same sound entries, and fails the same way
        # until the node has dropped the damaged record.
        r = n1.ctl("--json", "list")
        self.assertIn(r.rc, (0, 4), r)
        self.assertEqual(len(r.json_lines()), len(self.values) - 1)
        # Dropped, it is simply missing now (no peer to repair from).
        wait_until(lambda: n1.stats()["integrity"]["records_dropped"] >= 1,
                   what="the damaged record dropped")
        r = n1.ctl("list")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(n1.ctl("lookup", "rot/b").rc, 1)
        # With the peer back, repair brings it back.
        n1.stop()
        n1.extra = list(FAST)
        n2.start()
        n1.start()
        wait_until(lambda: n1.lookup("rot/b") == self.values["rot/b"],
                   timeout=30, what="rot/b repaired from n2")

    def test_scrub_finds_damage_nobody_reads(self):
        c, n1, n2 = self.setup_pair(FAST + ["--scrub-interval", "2s"])
        data = os.path.join(n1.data, "data.mdb")
        self.assertGreaterEqual(rot(data, b"a" * 64), 1)
        n1.start()
        # No read of rot/a: the scrub finds it, drops it, repair heals.
        wait_until(lambda: n1.stats()["integrity"]["records_dropped"] >= 1,
                   timeout=30, what="the scrub to drop the damaged record")
        self.assertEqual(n1.stats()["integrity"]["records_damaged"], 0)
        self.assertIn("event=store_healed", n1.logtext())
        wait_until(lambda: n1.lookup("rot/a") == self.values["rot/a"],
                   timeout=30, what="rot/a repaired from n2")
        wait_until(lambda: n1.stats()["integrity"]["scrub_passes"] >= 1,
                   timeout=30, what="a whole scrub pass")

    def test_damaged_key_bytes_are_found(self):
        # A changed byte in the key itself: the record no longer sits
        # under its key; lookups say so, and repair restores it.
        c, n1, n2 = self.setup_pair(FAST + ["--scrub-interval", "2s"])
        data = os.path.join(n1.data, "data.mdb")
        self.assertGreaterEqual(rot(data, b"k/017"), 1)
        n1.start()
        wait_until(lambda: n1.lookup("k/017") == self.values["k/017"],
                   timeout=30, what="k/017 repaired from n2")
        wait_until(lambda: n1.ctl("list").rc == 0 and
                   sorted(n1.ctl("list").out.splitlines()) ==
                   sorted(self.values), timeout=30,
                   what="list to hold exactly the written keys")


if __name__ == "__main__":
    lwwtest.main()
