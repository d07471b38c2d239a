"""Helpers for end-to-end tests: real lwwd processes in a temporary
directory, driven by the real lwwctl. Every wait is bounded in time.

Binaries come from $LWWD, $LWWCTL and $LWWFORGE (set by ctest)."""

import atexit
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

LWWD = os.environ.get("LWWD", "build/node/lwwd")
LWWCTL = os.environ.get("LWWCTL", "build/cli/lwwctl")
LWWFORGE = os.environ.get("LWWFORGE", "build/tests/lwwforge")
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:",
                   "ERROR: LeakSanitizer")


def wait_until(pred, timeout=10.0, step=0.05, what="condition"):
    """Polls pred() until it returns a true value, or fails the test."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                         f" (last: {last!r})")


class Result:
    def __init__(self, rc, out, err):
        self.rc, self.out, self.err = rc, out, err

    def json(self):
        return json.loads(self.out)

    def json_lines(self):
        return [json.loads(l) for l in self.out.splitlines() if l.strip()]

    def __repr__(self):
        return f"Result(rc={self.rc}, out={self.out[:200]!r}, err={self.err!r})"


def node_env():
    """The environment of every lwwd a test starts. One leak of nng 1.5,
    and only it, is suppressed for LeakSanitizer: its pair1 socket can
    leak a message made by ready_push (gossip.c) when the neighbour's
    pipe closes at that moment (pair1poly_pipe_close closes the pipe's
    send aio while pair1poly_pipe_get_cb may be handing it a message; the
    transport then refuses the send without completing it, and nobody
    frees the message). Any test where peers stop or restart may hit it.
    A test that sets LSAN_OPTIONS itself (a wrap of `env ...`) overrides
    this."""
    global _SUPP
    if _SUPP is None:
        fd, _SUPP = tempfile.mkstemp(prefix="lww-lsan-", suffix=".supp")
        with os.fdopen(fd, "w") as f:
            f.write("leak:ready_push\n")
        atexit.register(os.unlink, _SUPP)
    env = dict(os.environ)
    env.setdefault("LSAN_OPTIONS", f"suppressions={_SUPP}")
    return env


_SUPP = None


def ctl(*args, api=None, stdin=None, timeout=30, env=None):
    """Runs lwwctl; returns Result with bytes decoded as UTF-8 (or raw
    bytes in .raw)."""
    cmd = [LWWCTL]
    if api:
        cmd += ["--api", api]
    cmd += list(args)
    p = subprocess.run(cmd, input=stdin, capture_output=True,
                       timeout=timeout, env=env)
    r = Result(p.returncode, p.stdout.decode("utf-8", "replace"),
               p.stderr.decode("utf-8", "replace"))
    r.raw = p.stdout
    return r


class Node:
    def __init__(self, cluster, idx, name):
        self.cluster, self.idx, self.name = cluster, idx, name
        d = cluster.dir
        self.keyfile = os.path.join(d, f"{name}.key")
        self.data = os.path.join(d, f"{name}.data")
        self.logfile = os.path.join(d, f"{name}.log")
        if cluster.transport == "tcp":
            base = cluster.port_base + 10 * idx
            self.api = f"tcp://127.0.0.1:{base}"
            self.gossip = f"tcp://127.0.0.1:{base + 1}"
        else:
            self.api = f"ipc://{d}/{name}.api"
            self.gossip = f"ipc://{d}/{name}.gossip"
        self.proc = None
        self.peers = []
        self.extra = []
        self.wrap = []  # e.g. ["ip", "netns", "exec", NS]
        r = ctl("keygen", self.keyfile)
        assert r.rc == 0, r
        self.pubkey = r.out.strip()

    def start(self, wait=True, extra=None):
        args = self.wrap + [LWWD, "--data", self.data, "--key", self.keyfile,
                "--trust", self.cluster.trustfile, "--api", self.api,
                "--gossip", self.gossip]
        for p in self.peers:
            args += ["--peer", p]
        args += self.extra + (extra or [])
        self.log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     env=node_env())
        if wait:
            wait_until(lambda: self.proc.poll() is not None or
                       ctl("stats", api=self.api).rc == 0,
                       what=f"{self.name} API")
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.logtext()}")
        return self

    def ctl(self, *args, **kw):
        return ctl(*args, api=self.api, **kw)

    def stats(self):
        r = self.ctl("--json", "stats")
        assert r.rc == 0, r
        return r.json()

    def lookup(self, key):
        r = self.ctl("lookup", key)
        return r.out[:-1] if r.rc == 0 else None

    def logtext(self):
        with open(self.logfile, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Stops the node; returns its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise AssertionError(f"{self.name} did not stop within {timeout}s")
        finally:
            self.log.close()
            self.proc = None
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        self.proc = None


class Cluster:
    """N nodes that trust each other, each subscribed to all others."""

    def __init__(self, n=3, transport="ipc", trusted=None, extra=None):
        base = os.environ.get("LWW_TEST_TMP") or None
        if base:
            os.makedirs(base, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="lwwe2e.", dir=base)
        self.transport = transport
        # Below the kernel's ephemeral range (32768+), where a client
        # socket could already hold a port we want to listen on.
        self.port_base = 20000 + (os.getpid() * 37) % 12000
        self.trustfile = os.path.join(self.dir, "trust")
        self.nodes = [Node(self, i, f"n{i + 1}") for i in range(n)]
        trusted = range(n) if trusted is None else trusted
        with open(self.trustfile, "w") as f:
            f.write("# test cluster\n")
            for i in trusted:
                f.write(f"{self.nodes[i].name} {self.nodes[i].pubkey}\n")
        for a in self.nodes:
            a.peers = [b.gossip for b in self.nodes if b is not a]
            a.extra = list(extra or [])  # flags every node starts with

    def start(self):
        for n in self.nodes:
            n.start(wait=False)
        for n in self.nodes:
            wait_until(lambda: n.proc.poll() is not None or
                       ctl("stats", api=n.api).rc == 0,
                       what=f"{n.name} API")
        # Subscribers connect asynchronously: wait for heartbeats.
        for n in self.nodes:
            wait_until(lambda: n.stats()["heartbeats_received"] >=
                       len(self.nodes) - 1, what=f"{n.name} heartbeats")
        return self

    def dump_logs(self, lines=25):
        """Prints the last warn/error lines of every node's log to stderr
        (called when a test failed)."""
        import sys
        for n in self.nodes:
            if not os.path.exists(n.logfile):
                continue
            text = [ln for ln in n.logtext().splitlines()
                    if "level=debug" not in ln and "level=info" not in ln]
            sys.stderr.write(f"--- {n.name} log, last {lines} warn/error "
                             f"lines of {len(text)} ---\n")
            for ln in text[-lines:]:
                sys.stderr.write(ln[:400] + "\n")

    def close(self, check=True):
        """Stops every node with SIGTERM; checks each exited 0 with no
        sanitizer report in its log."""
        problems = []
        for n in self.nodes:
            if n.proc is not None:
                rc = n.stop()
                if rc != 0:
                    problems.append(f"{n.name} exited {rc}")
            if os.path.exists(n.logfile):
                text = n.logtext()
                for mark in SANITIZER_MARKS:
                    if mark in text:
                        problems.append(f"{n.name}: {mark}\n{text[-3000:]}")
        if check and problems:
            raise AssertionError("; ".join(problems))
        shutil.rmtree(self.dir, ignore_errors=True)


def forge_key(cluster, trusted, name="forge"):
    """A new key for lwwforge in the cluster's directory, listed in its
    trust file as NAME if trusted (before the nodes start)."""
    path = os.path.join(cluster.dir, f"{name}.key")
    r = ctl("keygen", path)
    assert r.rc == 0, r
    if trusted:
        with open(cluster.trustfile, "a") as f:
            f.write(f"{name} {r.out.strip()}\n")
    return path


def start_links(c, dials, extra=None):
    """Starts cluster c where node i dials only dials[i] (indexes), and
    waits until every node knows each of its neighbours by their
    heartbeat (stats gossip.neighbours; either direction of a link
    counts, and two nodes that dial each other have one link)."""
    nb = [set() for _ in c.nodes]
    for i, ds in enumerate(dials):
        c.nodes[i].peers = [c.nodes[j].gossip for j in ds]
        for j in ds:
            nb[i].add(j)
            nb[j].add(i)
    for n in c.nodes:
        n.extra += list(extra or [])
        n.start(wait=False)
    for i, n in enumerate(c.nodes):
        wait_until(lambda: n.proc.poll() is not None or
                   ctl("stats", api=n.api).rc == 0, timeout=30,
                   what=f"{n.name} API")
        wait_until(lambda: n.stats()["gossip"]["neighbours"] == len(nb[i]),
                   timeout=30, what=f"{n.name}'s {len(nb[i])} neighbours")
    return c


def gossip(node):
    """The stats' gossip counters (without the recent deliveries)."""
    g = node.stats()["gossip"]
    g.pop("deliveries", None)
    return g


class ClusterTest(unittest.TestCase):
    """A test case that closes (and checks) its clusters at the end."""

    def setUp(self):
        self.clusters = []
        self._problems_before = self._problems()

    def _problems(self):
        """Failures and errors recorded so far in this run (unittest's
        result object; 0 when it cannot be read)."""
        result = getattr(getattr(self, "_outcome", None), "result", None)
        return (len(getattr(result, "failures", ())) +
                len(getattr(result, "errors", ())))

    def cluster(self, *a, **kw):
        c = Cluster(*a, **kw)
        self.clusters.append(c)
        return c

    def tearDown(self):
        errors = []
        if self._problems() > self._problems_before:
            # CI keeps only this output: what the nodes said last is often
            # the only clue to a failure seen once under load.
            for c in self.clusters:
                c.dump_logs()
        for c in self.clusters:
            try:
                c.close()
            except AssertionError as e:
                errors.append(str(e))
        if errors:
            self.fail("; ".join(errors))


SKIP_EXIT = 77  # ctest's SKIP_RETURN_CODE for e2e tests (tests/CMakeLists.txt)


def main(argv=None):
    """Runs the calling file's tests, like unittest.main, with two changes
    ctest needs: `--except CLASS` (repeatable) leaves a class out, so one
    that may skip can run as its own ctest entry; and a run where every
    test skipped exits 77, which ctest shows as "Skipped", not "Passed"."""
    import __main__
    import sys
    argv = list(sys.argv[1:] if argv is None else argv)
    verbosity = 1
    excluded, names = set(), []
    while argv:
        a = argv.pop(0)
        if a == "-v":
            verbosity = 2
        elif a == "--except":
            if not argv:
                sys.exit("--except needs a test class name")
            excluded.add(argv.pop(0))
        elif a.startswith("--except="):
            excluded.add(a.split("=", 1)[1])
        else:
            names.append(a)
    loader = unittest.defaultTestLoader
    if names:
        suite = loader.loadTestsFromNames(names, __main__)
    else:
        suite = loader.loadTestsFromModule(__main__)

    def flat(s):
        for t in s:
            if isinstance(t, unittest.TestSuite):
                yield from flat(t)
            else:
                yield t
    tests = list(flat(suite))
    known = {type(t).__name__ for t in tests}
    unknown = excluded - known
    if unknown:
        sys.exit(f"--except: no test class {', '.join(sorted(unknown))}"
                 f" (have: {', '.join(sorted(known))})")
    tests = [t for t in tests if type(t).__name__ not in excluded]
    r = unittest.TextTestRunner(verbosity=verbosity).run(
        unittest.TestSuite(tests))
    if not r.wasSuccessful():
        sys.exit(1)
    if r.testsRun > 0 and len(r.skipped) == r.testsRun:
        sys.exit(SKIP_EXIT)
    sys.exit(0)
