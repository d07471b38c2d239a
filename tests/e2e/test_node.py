#!/usr/bin/env python3
"""End-to-end tests of lwwd: replication, durability across kill -9,
trust, forged and malformed gossip, malformed API requests, start-up
errors. Real processes, real sockets, a temporary directory."""

import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lwwtest  # noqa: E402
from lwwtest import (LWWD, LWWFORGE, ClusterTest, ctl,  # noqa: E402
                     wait_until)


def forge(url, keyfile, mode, key, value, until, what):
    """Publishes lwwforge's message every 50 ms on url (a --peer of the
    node under test) until until() holds, for at most 15 s: the node's
    link (a dial) reconnects with back-off, so it may join late."""
    p = subprocess.Popen([LWWFORGE, url, keyfile, mode, key, value, "300",
                          "50"], stderr=subprocess.PIPE)
    try:
        wait_until(until, timeout=15, what=what)
    finally:
        p.kill()
        p.wait()


class Replication(ClusterTest):
    def test_write_on_one_node_is_read_from_the_others(self):
        c = self.cluster(3).start()
        n1, n2, n3 = c.nodes
        r = n1.ctl("add", "greeting", "hello")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(n1.lookup("greeting"), "hello")
        for n in (n2, n3):
            wait_until(lambda: n.lookup("greeting") == "hello",
                       what=f"greeting on {n.name}")
        s = n2.stats()
        self.assertEqual(s["writes_remote"], 1)
        self.assertEqual(n1.stats()["writes_local"], 1)

    def test_remove_replicates(self):
        c = self.cluster(3).start()
        n1, n2, n3 = c.nodes
        self.assertEqual(n1.ctl("add", "k", "v").rc, 0)
        wait_until(lambda: n3.lookup("k") == "v", what="k on n3")
        self.assertEqual(n3.ctl("remove", "k").rc, 0)
        for n in (n1, n2):
            wait_until(lambda: n.ctl("lookup", "k").rc == 1,
                       what=f"k removed on {n.name}")
        self.assertEqual(n1.stats()["tombstones"], 1)
        self.assertEqual(n1.stats()["keys"], 0)

    def test_concurrent_writes_converge_to_one_winner(self):
        c = self.cluster(3).start()
        for i, n in enumerate(c.nodes):
            self.assertEqual(n.ctl("add", "contested", f"from-{n.name}").rc,
                             0)
        # Every node ends with the same value, the one with the greatest
        # stamp.
        def same():
            vals = [n.ctl("--json", "lookup", "contested") for n in c.nodes]
            if any(v.rc != 0 for v in vals):
                return False
            objs = [v.json() for v in vals]
            return len({(o["value"], o["hlc"], o["node"]) for o in objs}) == 1
        wait_until(same, what="one winner everywhere")


class Durability(ClusterTest):
    def test_acknowledged_writes_survive_kill9_and_clock_moves_on(self):
        c = self.cluster(1).start()
        n1 = c.nodes[0]
        last = None
        for i in range(30):
            r = n1.ctl("--json", "add", f"key{i}", f"value{i}")
            self.assertEqual(r.rc, 0, r)
            last = r.json()["hlc"]
        n1.kill9()
        n1.start()
        for i in range(30):
            self.assertEqual(n1.lookup(f"key{i}"), f"value{i}")
        r = n1.ctl("--json", "add", "after", "restart")
        self.assertGreater(r.json()["hlc"], last)

    def test_kill9_right_after_a_load_loses_nothing(self):
        # Acknowledged means in the write-ahead log: killed before any
        # checkpoint could put them in the store, the writes come back
        # from the log at the next start, and a clean stop leaves no
        # log segment behind.
        c = self.cluster(1).start()
        n1 = c.nodes[0]
        for rnd in range(3):
            lines = "".join(f"r{rnd}k{i:05d}\tv{rnd}.{i}\n"
                            for i in range(3000))
            r = n1.ctl("load", stdin=lines.encode())
            self.assertEqual(r.rc, 0, r)
            n1.kill9()
            n1.start()
            for i in (0, 1499, 2999):
                self.assertEqual(n1.lookup(f"r{rnd}k{i:05d}"), f"v{rnd}.{i}")
            self.assertEqual(n1.stats()["keys"], 3000 * (rnd + 1))
        self.assertEqual(n1.stop(), 0)
        self.assertEqual(
            [f for f in os.listdir(n1.data) if f.startswith("wal-")], [])

    def test_clean_stop_right_after_writes_leaves_no_segment(self):
        # The writer freezes what it logged as it stops and the
        # checkpointer applies it before the node exits, so a clean stop
        # leaves no wal- file. Nothing is read before the stop: a list or
        # stats would checkpoint first, and so would an idle second.
        c = self.cluster(1).start()
        n1 = c.nodes[0]
        lines = "".join(f"s{i:04d}\tv{i}\n" for i in range(2000))
        r = n1.ctl("load", stdin=lines.encode())
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(n1.stop(), 0)
        self.assertEqual(
            [f for f in os.listdir(n1.data) if f.startswith("wal-")], [])
        n1.start()
        self.assertEqual(n1.lookup("s1999"), "v1999")

    def test_full_store_refuses_writes_and_keeps_acknowledged_ones(self):
        # A 1 MiB store fills up: writes are then refused with a clear
        # error, every acknowledged one stays readable, and a restart
        # with a larger store has them all (the log kept them).
        c = self.cluster(1).start()
        n1 = c.nodes[0]
        n1.stop()
        n1.start(extra=["--map-size", "1"])
        acked, refused = 0, None

        def checkpoint():
            # Generous: under load a stats request may wait its turn.
            r = n1.ctl("--timeout", "60000", "--json", "stats", timeout=90)
            self.assertEqual(r.rc, 0, r)
            return r.json()["checkpoint"]

        # Writes are acknowledged from the log; the store fills when a
        # checkpoint applies them. After each batch wait (on the
        # condition, not for a fixed time) until a checkpoint has applied
        # every acknowledged write or has failed on the full store, so a
        # fast build fills it as surely as a slow one.
        for b in range(100):
            lines = "".join(f"b{b:02d}-{j:03d}\t{'x' * 200}\n"
                            for j in range(100))
            r = n1.ctl("load", stdin=lines.encode())
            if r.rc != 0:
                refused = r
                break
            acked = b + 1
            wait_until(lambda: (lambda cp: cp["failed"] > 0 or
                                cp["entries"] >= acked * 100)(checkpoint()),
                       timeout=120, step=0.2,
                       what="a checkpoint that applied the batch or "
                            "found the store full")
        self.assertIsNotNone(refused, "a 1 MiB store never filled")
        self.assertEqual(refused.rc, 4, refused)
        self.assertIn("store full", refused.err)
        self.assertGreater(acked, 0)
        last = f"b{acked - 1:02d}-099"
        self.assertEqual(n1.lookup(last), "x" * 200)
        wait_until(lambda: n1.ctl("add", "more", "1").rc == 4,
                   what="writes refused while the store is full")
        self.assertEqual(n1.lookup(last), "x" * 200)
        # Stats answer (no waiting for a checkpoint that cannot run)
        # and say why.
        self.assertGreater(n1.stats()["checkpoint"]["failed"], 0)
        # Retried every second, logged once a minute.
        wait_until(lambda: n1.stats()["checkpoint"]["failed"] >= 3,
                   what="three failed checkpoints")
        self.assertEqual(n1.logtext().count("event=checkpoint_failed"), 1)
        # list and the key count hold every acknowledged write, also
        # those only in the log while checkpoints cannot run.
        want = sorted(f"b{b:02d}-{j:03d}" for b in range(acked)
                      for j in range(100))
        r = n1.ctl("list", "b")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.out.splitlines(), want)
        self.assertEqual(n1.stats()["keys"], acked * 100)
        self.assertEqual(n1.stop(), 0)
        n1.start(extra=["--map-size", "16"])
        self.assertEqual(n1.lookup(last), "x" * 200)
        self.assertEqual(n1.stats()["keys"], acked * 100)
        self.assertEqual(n1.ctl("add", "more", "1").rc, 0)

    def test_sigterm_with_a_full_store_stops_and_keeps_the_log(self):
        # Acknowledged writes that do not fit the store when SIGTERM
        # comes: the node still stops at once, exits 0, and keeps them in
        # its log for the next start.
        c = self.cluster(1).start()
        n1 = c.nodes[0]
        n1.stop()
        n1.start(extra=["--map-size", "1"])
        lines = "".join(f"f{j:05d}\t{'y' * 200}\n" for j in range(4000))
        r = n1.ctl("load", stdin=lines.encode())
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(n1.stop(timeout=20), 0)
        self.assertIn("event=stopped", n1.logtext())
        n1.start(extra=["--map-size", "16"])
        self.assertEqual(n1.stats()["keys"], 4000)
        self.assertEqual(n1.lookup("f03999"), "y" * 200)

    def test_sigterm_exits_zero_and_keeps_data(self):
        c = self.cluster(1).start()
        n1 = c.nodes[0]
        self.assertEqual(n1.ctl("add", "a", "1").rc, 0)
        self.assertEqual(n1.stop(), 0)
        self.assertIn("event=stopped", n1.logtext())
        n1.start()
        self.assertEqual(n1.lookup("a"), "1")


class Trust(ClusterTest):
    def test_untrusted_node_cannot_change_data(self):
        c = self.cluster(3, trusted=[0, 1])
        n1, n2, n3 = c.nodes
        for n in c.nodes:
            n.start()
        wait_until(lambda: n1.stats()["rejected"]["untrusted"] > 0,
                   what="n1 rejecting n3's heartbeats")
        wait_until(lambda: n1.stats()["heartbeats_received"] > 0,
                   what="n1 hearing n2")
        self.assertEqual(n3.ctl("add", "owned", "by-mallory").rc, 0)
        wait_until(lambda: n3.stats()["batches_sent"] >= 1,
                   what="n3 sent its batch")
        before = n1.stats()["rejected"]["untrusted"]
        # A trusted write after the untrusted one still arrives, so the
        # channel works; the untrusted one never does.
        self.assertEqual(n2.ctl("add", "marker", "ok").rc, 0)
        wait_until(lambda: n1.lookup("marker") == "ok", what="marker")
        wait_until(lambda: n1.stats()["rejected"]["untrusted"] > before,
                   what="more rejections")
        self.assertIsNone(n1.lookup("owned"))
        self.assertIsNone(n2.lookup("owned"))

    def test_reload_refuses_a_trust_file_without_this_node(self):
        c = self.cluster(2)
        c.start()
        n1, n2 = c.nodes
        with open(c.trustfile) as f:
            good = f.read()
        cases = (("", "empty"),
                 (f"n2 {n2.pubkey}\n", "no longer lists this node"),
                 (good.split("\nn2")[0][:-8], "public key"))  # cut short
        for i, (text, why) in enumerate(cases):
            with open(c.trustfile, "w") as f:
                f.write(text)
            if i % 2 == 0:
                n1.proc.send_signal(signal.SIGHUP)
                wait_until(lambda: n1.logtext().count("reload_failed")
                           == i + 1, what=f"reload refused ({why})")
                line = [ln for ln in n1.logtext().splitlines()
                        if "reload_failed" in ln][-1]
                self.assertIn("level=error", line)
            else:
                r = n1.ctl("reload")
                self.assertEqual(r.rc, 4, r)
                line = r.err
            self.assertIn(c.trustfile, line)
            self.assertIn(why, line)
            # The old keys stay: n2's writes still arrive.
            self.assertEqual(n2.ctl("add", f"k{i}", "v").rc, 0)
            wait_until(lambda: n1.lookup(f"k{i}") == "v",
                       what=f"n2's write after refused reload {i}")
        self.assertNotIn("peer_removed", n1.logtext())

    def test_world_writable_trust_or_data_is_refused(self):
        c = self.cluster(2)
        c.start()
        n1, n2 = c.nodes
        os.chmod(c.trustfile, 0o666)
        n1.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload_failed" in n1.logtext(),
                   what="reload refused")
        self.assertIn(f"chmod o-w {c.trustfile}", n1.logtext())
        self.assertEqual(n2.ctl("add", "k", "v").rc, 0)
        wait_until(lambda: n1.lookup("k") == "v", what="old keys kept")
        n1.stop()
        for path, flag in ((c.trustfile, "--trust"), (n1.data, "--data")):
            os.chmod(c.trustfile, 0o644)
            os.chmod(n1.data, 0o700)
            os.chmod(path, 0o777 if path == n1.data else 0o666)
            p = subprocess.run([LWWD, "--data", n1.data, "--key", n1.keyfile,
                                "--trust", c.trustfile, "--api", n1.api,
                                "--gossip", n1.gossip],
                               capture_output=True, timeout=30)
            self.assertNotEqual(p.returncode, 0, flag)
            err = p.stderr.decode()
            self.assertIn(f"{flag} {path} is writable by every user", err)
            self.assertIn(f"chmod o-w {path}", err)

    def test_two_nodes_with_one_key_both_say_so(self):
        # A cloned image: n2 runs with n1's key. Each receives heartbeats
        # signed with its own key that it did not send.
        c = self.cluster(2)
        n1, n2 = c.nodes
        shutil.copyfile(n1.keyfile, n2.keyfile)
        for n in c.nodes:
            n.start()
        for n in c.nodes:
            wait_until(lambda: n.stats()["same_key_elsewhere"] > 0,
                       timeout=30, what=f"{n.name} noticing the clone")
            lines = [ln for ln in n.logtext().splitlines()
                     if "event=same_key_elsewhere" in ln]
            self.assertEqual(len(lines), 1, lines)  # once a minute
            self.assertIn("level=error", lines[0])
            self.assertIn("lwwctl keygen", lines[0])

    def test_own_gossip_address_as_peer_is_no_clone(self):
        c = self.cluster(1)
        n = c.nodes[0]
        n.peers = [n.gossip]
        n.start()
        wait_until(lambda: n.stats()["rejected"]["own_key"] > 2,
                   timeout=30, what="own heartbeats coming back")
        self.assertEqual(n.stats()["same_key_elsewhere"], 0)

    def test_sighup_removal_of_a_key_stops_its_writes(self):
        c = self.cluster(2, extra=["--repair-interval", "300"])
        c.start()
        n1, n2 = c.nodes
        self.assertEqual(n2.ctl("add", "before", "1").rc, 0)
        wait_until(lambda: n1.lookup("before") == "1", what="before")
        # n1 forgets n2: rewrite the trust file without it, then SIGHUP.
        with open(c.trustfile, "w") as f:
            f.write(f"n1 {n1.pubkey}\n")
        n1.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "event=peer_removed peer=n2" in n1.logtext(),
                   what="reload logged")
        self.assertEqual(n2.ctl("add", "after", "1").rc, 0)
        wait_until(lambda: n1.stats()["rejected"]["untrusted"] > 0,
                   what="n2 now rejected")
        # Neither gossip nor repair brings it: wait for repair rounds with
        # n2 to be refused after the reload.
        failed = n1.stats()["repair"]["failed"]
        wait_until(lambda: n1.stats()["repair"]["failed"] >= failed + 2,
                   what="repair rounds with n2 refused")
        self.assertIsNone(n1.lookup("after"))
        self.assertEqual(n1.lookup("before"), "1")  # merged writes stay

    def test_forged_node_id_is_rejected(self):
        c = self.cluster(2)
        n1, n2 = c.nodes
        fake = f"ipc://{c.dir}/forge.gossip"
        n1.peers.append(fake)
        c.start()
        # Control: a valid batch signed with n2's key arrives.
        forge(fake, n2.keyfile, "valid", "control", "yes",
              lambda: n1.lookup("control") == "yes", "control")
        # The same key signing an entry stamped with another node's id.
        forge(fake, n2.keyfile, "forged", "forged", "yes",
              lambda: n1.stats()["rejected"]["forged_node_id"] > 0,
              "forged rejection")
        self.assertIsNone(n1.lookup("forged"))

    def test_batch_signed_with_own_key_is_not_applied(self):
        # A batch signed with n1's own key comes from a loop or a clone:
        # counted as own_key and never written.
        c = self.cluster(1)
        n1 = c.nodes[0]
        fake = f"ipc://{c.dir}/forge.gossip"
        n1.peers.append(fake)
        c.start()
        forge(fake, n1.keyfile, "valid", "mine", "yes",
              lambda: n1.stats()["rejected"]["own_key"] > 0, "own key")
        self.assertIsNone(n1.lookup("mine"))

    def test_malformed_gossip_is_dropped_and_counted(self):
        c = self.cluster(2)
        n1, n2 = c.nodes
        fake = f"ipc://{c.dir}/forge.gossip"
        n1.peers.append(fake)
        c.start()
        # Each case proves its own refusal: lwwforge sends its message
        # exactly once, after n1 is subscribed, and the counter read just
        # before rises by exactly one (an earlier case's count does not
        # make a later one pass).
        for mode, counter in (("garbage", "malformed"),
                              ("truncated", "bad_signature"),
                              ("badsig", "bad_signature")):
            key = f"bad-{mode}"
            p = subprocess.Popen([LWWFORGE, fake, n2.keyfile, mode, key,
                                  "x", "once", "50"],
                                 stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            try:
                wait_until(lambda: n1.lookup(f"{key}.ready") == "1",
                           timeout=30, what=f"n1 subscribed ({mode})")
                before = n1.stats()["rejected"]
                p.stdin.write(b"go\n")
                p.stdin.flush()
                self.assertEqual(p.stdout.readline(), b"sent\n")
                wait_until(lambda: n1.stats()["rejected"][counter] >
                           before[counter], timeout=30,
                           what=f"{mode} counted")
                after = n1.stats()["rejected"]
                self.assertEqual(after[counter], before[counter] + 1,
                                 (mode, before, after))
                self.assertEqual(after, dict(before, **{
                    counter: before[counter] + 1}), mode)
            finally:
                p.stdin.close()
                p.wait(timeout=30)
                p.stdout.close()
                p.stderr.close()
            self.assertIsNone(n1.lookup(key))
        self.assertEqual(n1.stats()["keys"], 3)  # the three .ready keys
        self.assertEqual(n1.ctl("add", "still", "serving").rc, 0)

    def test_stamp_beyond_max_drift_is_refused(self):
        c = self.cluster(2)
        n1, n2 = c.nodes
        fake = f"ipc://{c.dir}/forge.gossip"
        n1.peers.append(fake)
        c.start()
        forge(fake, n2.keyfile, "drift", "future", "x",
              lambda: n1.stats()["drift_refused"] > 0, "drift")
        self.assertIsNone(n1.lookup("future"))
        self.assertIn("event=drift_refused peer=n2", n1.logtext())
        # The refused stamp did not drag n1's clock an hour ahead.
        r = n1.ctl("--json", "add", "now", "x")
        self.assertLess(r.json()["wall_ms"], time.time() * 1000 + 60000)


class HostileApi(ClusterTest):
    def nngcat(self, api, *args):
        return subprocess.run(["nngcat", "--req", "--dial", api,
                               "--recv-timeout", "2", "--format", "raw",
                               *args], capture_output=True, timeout=30)

    def test_garbage_and_truncated_requests_store_nothing(self):
        c = self.cluster(1).start()
        n1 = c.nodes[0]
        # Bytes of a valid ADD, then every truncation of it, then junk.
        valid = bytes([1, 0x20, 1, 3]) + b"abc" + bytes([2]) + b"xy"
        cases = [valid[:i] for i in range(len(valid))]
        cases += [b"\xff" * 40, bytes(range(256)), valid + b"\x00",
                  bytes([2, 0x20, 1, 1]) + b"k" + bytes([0]),
                  bytes([1, 0x20, 99])]
        for i, case in enumerate(cases):
            path = os.path.join(c.dir, f"case{i}")
            with open(path, "wb") as f:
                f.write(case)
            p = self.nngcat(n1.api, "--file", path)
            self.assertIn(p.returncode, (0, 1), p.stderr)
        s = n1.stats()
        self.assertEqual(s["keys"], 0)
        self.assertEqual(s["tombstones"], 0)
        self.assertGreaterEqual(s["api_bad_requests"], len(cases) - 1)
        self.assertEqual(n1.ctl("list").out, "")
        # The full valid request does store, so the cases above were
        # close to real.
        path = os.path.join(c.dir, "valid")
        with open(path, "wb") as f:
            f.write(valid)
        self.nngcat(n1.api, "--file", path)
        self.assertEqual(n1.lookup("abc"), "xy")

    def test_oversized_request_is_dropped(self):
        c = self.cluster(1).start()
        n1 = c.nodes[0]
        path = os.path.join(c.dir, "big")
        with open(path, "wb") as f:
            f.write(bytes([1, 0x20, 1]) + b"\x00" * (3 << 20))
        self.nngcat(n1.api, "--file", path)
        self.assertEqual(n1.stats()["keys"], 0)
        self.assertEqual(n1.ctl("add", "ok", "1").rc, 0)


class StartupErrors(ClusterTest):
    def run_lwwd(self, c, *args):
        n = c.nodes[0]
        base = ["--data", n.data, "--key", n.keyfile, "--trust",
                c.trustfile, "--api", n.api, "--gossip", n.gossip]
        p = subprocess.run([LWWD, *base, *args], capture_output=True,
                           timeout=30)
        return p.returncode, p.stderr.decode()

    def assertOneLine(self, err, *words):
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        for w in words:
            self.assertIn(w, lines[0])

    def test_missing_key_file(self):
        c = self.cluster(1)
        rc, err = self.run_lwwd(c, "--key", os.path.join(c.dir, "nope"))
        self.assertNotEqual(rc, 0)
        self.assertOneLine(err, "cannot load --key", "keygen")

    def test_key_file_readable_by_others(self):
        c = self.cluster(1)
        os.chmod(c.nodes[0].keyfile, 0o644)
        rc, err = self.run_lwwd(c)
        self.assertNotEqual(rc, 0)
        self.assertOneLine(err, "permissions", "chmod 600")

    def test_bad_trust_file_names_the_line(self):
        c = self.cluster(1)
        bad = os.path.join(c.dir, "badtrust")
        with open(bad, "w") as f:
            f.write("# ok\nn1 notakey\n")
        rc, err = self.run_lwwd(c, "--trust", bad)
        self.assertNotEqual(rc, 0)
        self.assertOneLine(err, "line 2", "public key")

    def test_address_in_use(self):
        c = self.cluster(2, transport="tcp")
        n1, n2 = c.nodes
        n1.start()
        rc, err = self.run_lwwd(c, "--data", n2.data, "--key", n2.keyfile,
                                "--gossip", n2.gossip, "--api", n1.api)
        self.assertNotEqual(rc, 0)
        self.assertOneLine(err, "--api", "in use")

    def test_data_dir_not_creatable(self):
        c = self.cluster(1)
        f = os.path.join(c.dir, "afile")
        open(f, "w").close()
        rc, err = self.run_lwwd(c, "--data", os.path.join(f, "sub"))
        self.assertNotEqual(rc, 0)
        self.assertOneLine(err, "--data")

    def test_public_tcp_api_refused_without_insecure_flag(self):
        c = self.cluster(1)
        rc, err = self.run_lwwd(c, "--api", "tcp://0.0.0.0:0")
        self.assertNotEqual(rc, 0)
        self.assertOneLine(err, "non-loopback", "--insecure-api")

    def test_host_named_like_loopback_is_not_loopback(self):
        # Only an address in 127.0.0.0/8 or ::1 is loopback; a name that
        # starts with "127." may resolve anywhere.
        c = self.cluster(1)
        rc, err = self.run_lwwd(c, "--api", "tcp://127.lww-test.invalid:0")
        self.assertNotEqual(rc, 0)
        self.assertOneLine(err, "non-loopback", "--insecure-api")

    def test_insecure_api_booleans_are_strict(self):
        c = self.cluster(1)
        conf = os.path.join(c.dir, "lwwd.conf")
        for word in ("no", "false", "OFF", "0"):
            with open(conf, "w") as f:
                f.write(f"[lwwd]\ninsecure-api = {word}\n")
            rc, err = self.run_lwwd(c, "--config", conf,
                                    "--api", "tcp://0.0.0.0:0")
            self.assertNotEqual(rc, 0, word)
            self.assertOneLine(err, "non-loopback", "--insecure-api")
        with open(conf, "w") as f:
            f.write("[lwwd]\n# comment\ninsecure-api = maybe\n")
        rc, err = self.run_lwwd(c, "--config", conf)
        self.assertNotEqual(rc, 0)
        self.assertOneLine(err, "insecure-api", "maybe", conf, "line 3",
                           "yes, no")

    def test_version_names_the_commit_and_start_names_every_address(self):
        for prog in (LWWD, os.environ.get("LWWCTL", "build/cli/lwwctl")):
            p = subprocess.run([prog, "--version"], capture_output=True,
                               timeout=10)
            self.assertEqual(p.returncode, 0)
            self.assertRegex(p.stdout.decode(),
                             r"^lww\S+ \S+ \(commit ([0-9a-f]{7,}|unknown)")
        c = self.cluster(1, transport="tcp")
        n = c.nodes[0]
        port = int(n.api.rsplit(":", 1)[1]) + 5
        metrics = f"http://127.0.0.1:{port}/metrics"
        n.extra = ["--metrics", metrics]
        c.start()
        start = [ln for ln in n.logtext().splitlines()
                 if "event=start " in ln][0]
        sync = n.gossip.rsplit(":", 1)[0] + ":" + str(
            int(n.gossip.rsplit(":", 1)[1]) + 1)
        for addr in (f"api={n.api}", f"gossip={n.gossip}", f"sync={sync}",
                     f"metrics={metrics}", "commit "):
            self.assertIn(addr, start)

    def test_usage_errors(self):
        c = self.cluster(1)
        rc, err = self.run_lwwd(c, "--fsync", "sometimes")
        self.assertEqual(rc, 2)
        self.assertIn("always or none", err)
        p = subprocess.run([LWWD], capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"missing --data", p.stderr)
        p = subprocess.run([LWWD, "--help"], capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 0)
        for flag in (b"--data", b"--key", b"--trust", b"--api", b"--gossip",
                     b"--sync", b"--peer", b"--max-drift", b"--fsync",
                     b"--log-level", b"--config", b"--scrub-interval",
                     b"--wal-recovery"):
            self.assertIn(flag, p.stdout)
        # A DURATION needs its unit (0 alone is off), at least 1 s.
        for bad in ("5", "5x", "500ms", "-1s", "s", "1h5m"):
            rc, err = self.run_lwwd(c, "--scrub-interval", bad)
            self.assertEqual(rc, 2, bad)
            self.assertOneLine(err, "--scrub-interval", "duration")

    def test_config_file_and_flag_override(self):
        c = self.cluster(1)
        n = c.nodes[0]
        conf = os.path.join(c.dir, "lwwd.conf")
        with open(conf, "w") as f:
            f.write(f"[lwwd]\ndata = {n.data}\nkey = {n.keyfile}\n"
                    f"trust = {c.trustfile}\napi = ipc://{c.dir}/wrong\n"
                    f"gossip = {n.gossip}\nfsync = none\n")
        n.proc = subprocess.Popen([LWWD, "--config", conf, "--api", n.api],
                                  stdout=subprocess.DEVNULL,
                                  stderr=open(n.logfile, "ab"))
        n.log = open(os.devnull, "ab")
        wait_until(lambda: ctl("stats", api=n.api).rc == 0,
                   what="API at the flag's URL")
        self.assertIn("fsync=none", n.logtext())
        self.assertFalse(os.path.exists(f"{c.dir}/wrong"))
        bad = os.path.join(c.dir, "bad.conf")
        with open(bad, "w") as f:
            f.write("[lwwd]\nbogus = 1\n")
        p = subprocess.run([LWWD, "--config", bad], capture_output=True,
                           timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"line 2: unknown option 'bogus'", p.stderr)


if __name__ == "__main__":
    lwwtest.main()
