#!/usr/bin/env python3
"""Operating lww: install into a DESTDIR, build the .deb and read its
contents and dependencies, verify the systemd unit, scrape the Prometheus
endpoint of a running node with curl, and read the human tables of
lwwctl stats and peers."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lwwtest  # noqa: E402
from lwwtest import ClusterTest, wait_until  # noqa: E402

BUILD = os.environ.get("LWW_BUILD_DIR", "build")
SOURCE = os.environ.get("LWW_SOURCE_DIR", ".")


def run(*args, **kw):
    return subprocess.run(list(args), capture_output=True, timeout=300, **kw)


class Install(unittest.TestCase):
    def test_install_into_destdir(self):
        with tempfile.TemporaryDirectory() as dest:
            p = run("cmake", "--install", BUILD, "--prefix", "/usr",
                    env=dict(os.environ, DESTDIR=dest))
            self.assertEqual(p.returncode, 0, p.stderr)
            for f in ("usr/bin/lwwd", "usr/bin/lwwctl",
                      "usr/lib/systemd/system/lwwd.service",
                      "usr/share/doc/lww/lwwd.conf.example",
                      "usr/share/doc/lww/README.md"):
                self.assertTrue(os.path.exists(os.path.join(dest, f)), f)
            self.assertTrue(os.access(os.path.join(dest, "usr/bin/lwwd"),
                                      os.X_OK))
            # The sample config is one lwwd accepts (up to the key file).
            conf = os.path.join(dest, "usr/share/doc/lww/lwwd.conf.example")
            p = run(os.path.join(dest, "usr/bin/lwwd"), "--config", conf)
            self.assertIn(b"cannot load --key /etc/lww/node.key", p.stderr)

    @unittest.skipIf(shutil.which("dpkg-deb") is None or
                     shutil.which("cpack") is None, "no dpkg-deb or cpack")
    def test_debian_package(self):
        with tempfile.TemporaryDirectory() as out:
            p = run("cpack", "-G", "DEB", "-B", out, cwd=BUILD)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            debs = [f for f in os.listdir(out) if f.endswith(".deb")]
            self.assertEqual(len(debs), 1, os.listdir(out))
            deb = os.path.join(out, debs[0])
            files = run("dpkg-deb", "-c", deb).stdout.decode()
            for f in ("./usr/bin/lwwd", "./usr/bin/lwwctl",
                      "./usr/lib/systemd/system/lwwd.service",
                      "./usr/share/doc/lww/lwwd.conf.example"):
                self.assertIn(f, files)
            depends = run("dpkg-deb", "-f", deb, "Depends").stdout.decode()
            for lib in ("libsodium", "libnng", "liblmdb", "libinih",
                        "adduser"):
                self.assertIn(lib, depends)
            control = run("dpkg-deb", "-I", deb).stdout.decode()
            self.assertIn("postinst", control)

    @unittest.skipIf(shutil.which("systemd-analyze") is None,
                     "no systemd-analyze")
    def test_unit_verifies(self):
        with tempfile.TemporaryDirectory() as d:
            unit = os.path.join(d, "lwwd.service")
            with open(os.path.join(SOURCE, "cmake/lwwd.service")) as f:
                text = f.read()
            # Verify against the binary just built (not yet installed).
            text = text.replace("/usr/bin/lwwd",
                                os.path.abspath(os.path.join(
                                    BUILD, "node/lwwd")))
            with open(unit, "w") as f:
                f.write(text)
            p = run("systemd-analyze", "verify", unit)
            self.assertEqual(p.returncode, 0, p.stderr)
            for must in ("Restart=on-failure", "User=lww",
                         "ProtectSystem=strict", "NoNewPrivileges=yes",
                         "StateDirectory=lww"):
                self.assertIn(must, text)


class Metrics(ClusterTest):
    def scrape(self, url):
        p = run("curl", "-sf", url)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.decode()

    def value(self, text, name):
        m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
        self.assertIsNotNone(m, f"{name} not in metrics")
        return float(m.group(1))

    @unittest.skipIf(shutil.which("curl") is None, "no curl")
    def test_metrics_endpoint_moves_with_writes(self):
        c = self.cluster(2, transport="tcp")
        n1, n2 = c.nodes
        port = int(n1.api.rsplit(":", 1)[1]) + 5
        url = f"http://127.0.0.1:{port}/metrics"
        n1.extra = ["--metrics", url]
        c.start()
        before = self.scrape(url)
        self.assertIn("# TYPE lww_writes_total counter", before)
        self.assertIn("# HELP lww_keys ", before)
        self.assertIn('lww_peer_last_contact_seconds{peer="n2"}', before)
        w0 = self.value(before, 'lww_writes_total{origin="local"}')
        for i in range(5):
            self.assertEqual(n1.ctl("add", f"m{i}", "v").rc, 0)
        self.assertEqual(n2.ctl("add", "from-n2", "v").rc, 0)
        wait_until(lambda: n1.lookup("from-n2") == "v", what="gossip")
        after = self.scrape(url)
        self.assertEqual(self.value(after, 'lww_writes_total{origin="local"}'),
                         w0 + 5)
        self.assertEqual(
            self.value(after, 'lww_writes_total{origin="remote"}'), 1)
        self.assertEqual(self.value(after, "lww_keys"), 6)
        self.assertGreater(self.value(after, "lww_fsync_seconds_count"), 0)
        self.assertEqual(run("curl", "-sf", url.replace("/metrics", "/x"))
                         .returncode, 22)  # 404

    def test_human_tables(self):
        c = self.cluster(2).start()
        n1 = c.nodes[0]
        r = n1.ctl("stats")
        self.assertEqual(r.rc, 0)
        self.assertRegex(r.out, r"(?m)^keys +0$")
        self.assertRegex(r.out, r"(?m)^repair\.rounds +\d+$")
        r = n1.ctl("peers")
        lines = r.out.splitlines()
        self.assertTrue(lines[0].startswith("NAME"))
        self.assertIn("LAG", lines[0])
        self.assertTrue(lines[1].startswith("n2 "))
        self.assertRegex(lines[1], r"\d+\.\ds ago")


    def test_unreachable_peer_is_named_and_shown(self):
        c = self.cluster(2, transport="tcp")
        n1, n2 = c.nodes
        dead = f"tcp://127.0.0.1:{c.port_base + 7}"  # nobody listens
        n1.peers.append(dead)
        c.start()
        wait_until(lambda: "event=peer_unreachable" in n1.logtext(),
                   timeout=30, what="a warning naming the dead peer")
        def addresses():
            return {p["url"]: p for p in n1.ctl("--json", "peers").json()
                    if p["kind"] == "address"}
        wait_until(lambda: addresses().get(n2.gossip, {}).get("state") ==
                   "connected", timeout=30, what="n2's address connected")
        rows = addresses()
        self.assertEqual(rows[dead]["state"], "failing")
        self.assertIn("connection refused", rows[dead]["last_error"])
        self.assertEqual(rows[dead]["dial"], "--peer")
        sync = f"tcp://127.0.0.1:{c.port_base + 8}"  # its default --sync
        self.assertEqual(rows[sync]["dial"], "sync of --peer")
        out = n1.ctl("peers").out
        self.assertRegex(out, r"(?m)^ADDRESS +DIALLED AS +STATE +LAST ERROR$")
        self.assertRegex(out, rf"(?m)^{dead} +--peer +failing +connection "
                              r"refused")
        # Named once, not once per redial (at most once a minute).
        time.sleep(2)
        warns = [ln for ln in n1.logtext().splitlines()
                 if "event=peer_unreachable" in ln and f"url={dead} " in ln]
        self.assertEqual(len(warns), 1, warns)
        self.assertIn("level=warn", warns[0])


if __name__ == "__main__":
    lwwtest.main()
