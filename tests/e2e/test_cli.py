#!/usr/bin/env python3
"""End-to-end tests of lwwctl against a real lwwd: every command, every
exit code, binary values through stdin, JSON parsed back, list across
continuations, limits and transport errors."""

import base64
import json
import os
import stat
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lwwtest  # noqa: E402
from lwwtest import ClusterTest, ctl  # noqa: E402


class Cli(ClusterTest):
    def setUp(self):
        super().setUp()
        self.c = self.cluster(1).start()
        self.n = self.c.nodes[0]

    def test_add_lookup_remove_and_exit_codes(self):
        n = self.n
        r = n.ctl("add", "k", "v")
        self.assertEqual((r.rc, r.out, r.err), (0, "", ""))
        r = n.ctl("lookup", "k")
        self.assertEqual((r.rc, r.out), (0, "v\n"))
        r = n.ctl("remove", "k")
        self.assertEqual((r.rc, r.out), (0, ""))
        r = n.ctl("lookup", "k")
        self.assertEqual(r.rc, 1)
        self.assertEqual(r.out, "")
        self.assertEqual(r.err.count("\n"), 1)
        self.assertIn("not found", r.err)
        r = n.ctl("lookup", "never-written")
        self.assertEqual(r.rc, 1)

    def test_json_output_parses(self):
        n = self.n
        r = n.ctl("--json", "add", "user:1", "Zoë")
        self.assertEqual(r.rc, 0, r)
        stamp = r.json()
        self.assertEqual(stamp["key"], "user:1")
        self.assertGreater(stamp["hlc"], 0)
        self.assertEqual(len(stamp["node"]), 16)
        r = n.ctl("--json", "lookup", "user:1")
        obj = r.json()
        self.assertEqual(obj["value"], "Zoë")
        self.assertEqual(obj["value_encoding"], "utf8")
        self.assertEqual(obj["hlc"], stamp["hlc"])
        self.assertEqual(obj["node"], stamp["node"])
        self.assertEqual(obj["wall_ms"], stamp["hlc"] >> 16)
        s = n.ctl("--json", "stats").json()
        self.assertEqual(s["keys"], 1)
        self.assertEqual(s["writes_local"], 1)
        self.assertEqual(n.ctl("--json", "peers").json(), [])

    def test_binary_value_through_stdin(self):
        n = self.n
        value = bytes(range(256)) * 4 + b"\x00\x00end"
        r = ctl("add", "bin", "-", api=n.api, stdin=value)
        self.assertEqual(r.rc, 0, r)
        r = n.ctl("lookup", "bin")
        self.assertEqual(r.raw, value + b"\n")
        obj = n.ctl("--json", "lookup", "bin").json()
        self.assertEqual(obj["value_encoding"], "base64")
        self.assertEqual(base64.b64decode(obj["value"]), value)
        # An empty value is a value, not a removal.
        self.assertEqual(ctl("add", "empty", "-", api=n.api,
                             stdin=b"").rc, 0)
        self.assertEqual(n.ctl("lookup", "empty").raw, b"\n")

    def test_list_follows_continuations(self):
        n = self.n
        lines = "".join(f"item/{i:05d}\tvalue {i}\n" for i in range(2500))
        lines += "other\tx\n"
        r = ctl("load", api=n.api, stdin=lines.encode())
        self.assertEqual((r.rc, r.out), (0, ""), r)
        self.assertEqual(n.stats()["keys"], 2501)
        r = n.ctl("list", "item/")
        keys = r.out.splitlines()
        self.assertEqual(len(keys), 2500)
        self.assertEqual(keys, sorted(keys))
        self.assertEqual(keys[0], "item/00000")
        self.assertEqual(keys[-1], "item/02499")
        objs = n.ctl("--json", "list").json_lines()
        self.assertEqual(len(objs), 2501)
        self.assertEqual(objs[1234]["value"], "value 1234")
        self.assertEqual(objs[-1]["key"], "other")
        # Removed keys are not listed.
        self.assertEqual(n.ctl("remove", "item/00007").rc, 0)
        self.assertEqual(len(n.ctl("list", "item/").out.splitlines()), 2499)

    def test_load_json_round_trips_list_output(self):
        n = self.n
        self.assertEqual(ctl("add", "b", "-", api=n.api,
                             stdin=b"\xff\x00bin").rc, 0)
        self.assertEqual(n.ctl("add", "t", 'quote " and \\ tab\t').rc, 0)
        dump = n.ctl("--json", "list").out
        other = self.cluster(1).start().nodes[0]
        r = ctl("--json", "load", api=other.api, stdin=dump.encode())
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.json(), {"loaded": 2})
        self.assertEqual(other.ctl("lookup", "b").raw, b"\xff\x00bin\n")
        self.assertEqual(other.lookup("t"), 'quote " and \\ tab\t')

    def test_limits_are_refused_with_exit_4(self):
        n = self.n
        r = n.ctl("add", "k" * 1025, "v")
        self.assertEqual(r.rc, 4)
        self.assertIn("key longer than 1024 bytes", r.err)
        self.assertEqual(n.ctl("add", "k" * 1024, "v").rc, 0)
        r = n.ctl("add", "", "v")
        self.assertEqual(r.rc, 4)
        r = ctl("add", "big", "-", api=n.api, stdin=b"x" * (1024 * 1024 + 1))
        self.assertEqual(r.rc, 4)
        self.assertIn("value longer than", r.err)
        r = ctl("add", "big", "-", api=n.api, stdin=b"x" * (1024 * 1024))
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(len(n.ctl("lookup", "big").raw), 1024 * 1024 + 1)
        r = ctl("load", api=n.api, stdin=b"no tab here\n")
        self.assertEqual(r.rc, 4)
        self.assertIn("line 1", r.err)
        self.assertIsNone(n.lookup("no tab here"))

    def test_unreachable_node_and_bad_url(self):
        r = ctl("lookup", "k", api=f"ipc://{self.c.dir}/nobody")
        self.assertEqual(r.rc, 3)
        self.assertIn("cannot reach", r.err)
        self.assertIn("connection refused", r.err)
        self.assertEqual(r.err.count("\n"), 1)
        r = ctl("lookup", "k", api="tcp://127.0.0.1:1")
        self.assertEqual(r.rc, 3)
        r = ctl("lookup", "k", api="bogus://x")
        self.assertEqual(r.rc, 2)
        self.assertIn("bad --api URL", r.err)
        env = dict(os.environ, LWW_API=self.n.api)
        self.assertEqual(ctl("add", "via-env", "1", env=env).rc, 0)
        self.assertEqual(self.n.lookup("via-env"), "1")

    def test_timeout_against_a_silent_node(self):
        import signal
        self.n.proc.send_signal(signal.SIGSTOP)
        try:
            r = ctl("--timeout", "300", "lookup", "k", api=self.n.api)
            self.assertEqual(r.rc, 3)
            self.assertIn("timed out", r.err)
        finally:
            self.n.proc.send_signal(signal.SIGCONT)

    def test_usage_errors_exit_2(self):
        for args in (["frobnicate"], ["add", "k"], ["lookup"],
                     ["remove", "a", "b"], [], ["--timeout", "0", "stats"],
                     ["--nope", "stats"]):
            r = ctl(*args, api=self.n.api)
            self.assertEqual(r.rc, 2, (args, r))
            self.assertTrue(r.err.startswith("lwwctl:") or "usage" in r.err,
                            r.err)
        r = ctl("--help")
        self.assertEqual(r.rc, 0)
        for word in ("add", "remove", "lookup", "list", "load", "stats",
                     "peers", "keygen", "--api", "--timeout", "--json",
                     "exit codes"):
            self.assertIn(word, r.out)
        for cmd in ("add", "lookup", "list", "keygen"):
            r = ctl(cmd, "--help")
            self.assertEqual(r.rc, 0)
            self.assertIn(f"lwwctl", r.out)
            self.assertIn(cmd, r.out)

    def test_keygen(self):
        path = os.path.join(self.c.dir, "new.key")
        r = ctl("keygen", path)
        self.assertEqual(r.rc, 0)
        self.assertEqual(len(r.out.strip()), 44)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path + ".pub") as f:
            self.assertEqual(f.read().strip(), r.out.strip())
        r2 = ctl("keygen", path)
        self.assertEqual(r2.rc, 4)
        self.assertIn("will not overwrite", r2.err)
        with open(path + ".pub") as f:
            self.assertEqual(f.read().strip(), r.out.strip())
        r = ctl("--json", "keygen", path + "2")
        obj = r.json()
        self.assertEqual(len(obj["public_key"]), 44)
        self.assertEqual(len(obj["node"]), 16)


class Edges(ClusterTest):
    """The command line as users of etcdctl, consul kv and redis-cli
    expect it (issue 19)."""

    def setUp(self):
        super().setUp()
        self.c = self.cluster(1).start()
        self.n = self.c.nodes[0]

    def test_default_api_is_named_with_how_to_change_it(self):
        if os.path.exists("/run/lww/api"):
            self.skipTest("a node listens on /run/lww/api here")
        for api in (None, ""):
            env = {k: v for k, v in os.environ.items() if k != "LWW_API"}
            if api is not None:
                env["LWW_API"] = api
            r = ctl("lookup", "k", env=env)
            self.assertEqual(r.rc, 3, r)
            self.assertEqual(r.err.count("\n"), 1, r.err)
            for word in ("ipc:///run/lww/api", "--api", "LWW_API"):
                self.assertIn(word, r.err)

    def test_options_after_the_command_and_with_equals(self):
        n = self.n
        self.assertEqual(n.ctl("add", "k", "v").rc, 0)
        r = ctl("lookup", "k", "--json", api=n.api)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.json()["value"], "v")
        r = ctl("lookup", "k", f"--api={n.api}", "--timeout=3000", "--json")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.json()["value"], "v")
        r = ctl("--json", "lookup", "--api", n.api, "k")
        self.assertEqual(r.json()["value"], "v")

    def test_double_dash_ends_options(self):
        n = self.n
        r = ctl("add", "k", "-5", api=n.api)
        self.assertEqual(r.rc, 2, r)
        self.assertIn("-5", r.err)
        self.assertIn("--", r.err)
        self.assertIsNone(n.lookup("k"))
        r = ctl("add", "--", "k", "-5", api=n.api)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(n.lookup("k"), "-5")
        r = ctl("--json", "lookup", "--", "k", api=n.api)
        self.assertEqual(r.json()["value"], "-5")
        r = ctl("add", "--", "-k", "-", api=n.api, stdin=b"dash")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(ctl("lookup", "--", "-k", api=n.api).out, "dash\n")

    def test_help_for_every_command(self):
        r = ctl("help")
        self.assertEqual(r.rc, 0, r)
        overview = r.out
        self.assertEqual(ctl("--help").out, overview)
        cmds = ("add", "remove", "lookup", "list", "load", "stats", "peers",
                "reload", "keygen", "help")
        for cmd in cmds:
            self.assertIn(f"\n  {cmd} ", overview)
            r = ctl("help", cmd)
            self.assertEqual(r.rc, 0, (cmd, r))
            self.assertTrue(r.out.startswith("usage: lwwctl "), r.out)
            self.assertIn(f" {cmd}", r.out.splitlines()[0])
            self.assertIn("--api", r.out)
            self.assertEqual(ctl(cmd, "--help").out, r.out, cmd)
            self.assertEqual(ctl("--help", cmd).out, r.out, cmd)
        self.assertIn("ipc:///run/lww/api", overview)
        r = ctl("help", "frobnicate")
        self.assertEqual(r.rc, 2)
        self.assertIn("frobnicate", r.err)
        r = ctl("frobnicate", "--help")
        self.assertEqual(r.rc, 2)

    def load_with_bad_line(self, json_mode):
        n = self.n
        if json_mode:
            good = [json.dumps({"key": f"j{i}", "value": str(i)})
                    for i in range(3)]
            text = "\n".join(good + ["{\"nokey\":1}",
                                      json.dumps({"key": "after",
                                                  "value": "x"})]) + "\n"
            r = ctl("--json", "load", api=n.api, stdin=text.encode())
        else:
            text = "a\t1\nb\t2\n\nc\t3\nno tab here\nafter\tx\n"
            r = ctl("load", api=n.api, stdin=text.encode())
        self.assertEqual(r.rc, 4, r)
        self.assertEqual(r.err.count("\n"), 1, r.err)
        self.assertIsNone(n.lookup("after"))
        return r

    def test_load_stops_on_a_bad_line_saying_what_it_stored(self):
        r = self.load_with_bad_line(False)
        self.assertIn("line 5", r.err)
        self.assertIn("3 entries stored", r.err)
        self.assertIn("tail -n +5", r.err)
        for k, v in (("a", "1"), ("b", "2"), ("c", "3")):
            self.assertEqual(self.n.lookup(k), v)

    def test_load_json_stops_on_a_bad_line_with_a_json_report(self):
        r = self.load_with_bad_line(True)
        rep = r.json()
        self.assertEqual((rep["loaded"], rep["line"]), (3, 4), rep)
        self.assertIn("key", rep["error"])
        for i in range(3):
            self.assertEqual(self.n.lookup(f"j{i}"), str(i))

    def test_load_takes_crlf_lines(self):
        n = self.n
        r = ctl("load", api=n.api, stdin=b"a\t1\r\nb\ttwo words\r\n")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(n.ctl("lookup", "a").raw, b"1\n")
        self.assertEqual(n.ctl("lookup", "b").raw, b"two words\n")
        line = json.dumps({"key": "j", "value": "v"}).encode()
        r = ctl("--json", "load", api=n.api, stdin=line + b"\r\n")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.json(), {"loaded": 1})
        self.assertEqual(n.ctl("lookup", "j").raw, b"v\n")


if __name__ == "__main__":
    lwwtest.main()
