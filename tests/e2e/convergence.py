"""The convergence checker used by the fault tests.

Writers record every acknowledged write (key, value or removal, stamp).
After the faults heal, check() waits (bounded) until every node lists the
same keys and values, then verifies that each key holds the acknowledged
write with the greatest stamp, or a later one. It reports acknowledged
writes lost (must be 0), keys diverged (must be 0) and the time to
converge."""

import threading
import time

from lwwtest import ctl


def order_key(w):
    """The total order of writes: hlc, node, tombstone over value, then
    value bytes (shorter first)."""
    hlc, node, value = w
    node_i = int(node, 16)
    if value is None:
        return (hlc, node_i, 1, 0, b"")
    b = value.encode()
    return (hlc, node_i, 0, len(b), b)


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}  # key -> list of (hlc, node, value|None)
        self.attempts = 0
        self.failures = 0

    def add(self, node, key, value):
        return self._write(node, ["--json", "add", key, value], key, value)

    def remove(self, node, key):
        return self._write(node, ["--json", "remove", key], key, None)

    def _write(self, node, args, key, value):
        r = ctl(*args, api=node.api, timeout=30)
        with self.lock:
            self.attempts += 1
            if r.rc != 0:
                self.failures += 1
                return False
            o = r.json()
            self.acked.setdefault(key, []).append((o["hlc"], o["node"], value))
        return True

    def expected(self):
        """key -> value of the greatest acknowledged write (None: removed)."""
        with self.lock:
            return {k: max(ws, key=order_key)[2] for k, ws in self.acked.items()}

    def greatest(self):
        with self.lock:
            return {k: max(ws, key=order_key) for k, ws in self.acked.items()}


def writer(rec, nodes, prefix, count, keys, remove_every=0, pause=0.0,
           stop=None):
    """Writes count values round-robin over nodes and `keys` keys (every
    remove_every-th a removal), until stop is set. Bounded in count."""
    for i in range(count):
        if stop is not None and stop.is_set():
            return
        node = nodes[i % len(nodes)]
        key = f"{prefix}{i % keys}"
        if remove_every and i % remove_every == remove_every - 1:
            rec.remove(node, key)
        else:
            rec.add(node, key, f"{prefix}v{i}")
        if pause:
            time.sleep(pause)


def snapshot(node):
    r = ctl("--json", "list", api=node.api, timeout=60)
    if r.rc != 0:
        return None
    return {o["key"]: (o["value"], o["hlc"], o["node"])
            for o in r.json_lines()}


def check(test, rec, nodes, timeout=60.0):
    """Waits until all nodes agree, then asserts nothing acknowledged was
    lost. Returns the time to converge in seconds."""
    t0 = time.monotonic()
    snaps = None
    while time.monotonic() - t0 < timeout:
        snaps = [snapshot(n) for n in nodes]
        if all(s is not None for s in snaps) and \
                all(s == snaps[0] for s in snaps[1:]):
            break
        time.sleep(0.2)
    took = time.monotonic() - t0
    diverged = set()
    if snaps and all(s is not None for s in snaps):
        for s in snaps[1:]:
            for k in set(s) | set(snaps[0]):
                if s.get(k) != snaps[0].get(k):
                    diverged.add(k)
    else:
        diverged.add("<a node did not answer list>")
    lost = []
    greatest = rec.greatest()
    for n, s in zip(nodes, snaps or []):
        if s is None:
            continue
        for k, (hlc, node, value) in greatest.items():
            got = s.get(k)
            if value is None:
                # Removed: absent, or a later write (a greater stamp).
                if got is not None and \
                        order_key((got[1], got[2], got[0])) < \
                        order_key((hlc, node, value)):
                    lost.append((n.name, k, "removal"))
            elif got is None or \
                    order_key((got[1], got[2], got[0])) < \
                    order_key((hlc, node, value)):
                lost.append((n.name, k, value))
    print(f"\nconvergence: {len(rec.acked)} keys, {rec.attempts} writes "
          f"attempted, {rec.attempts - rec.failures} acknowledged, "
          f"lost {len(lost)}, diverged {len(diverged)}, "
          f"converged in {took:.2f}s", flush=True)
    test.assertEqual(lost, [], "acknowledged writes lost")
    test.assertEqual(sorted(diverged), [], "keys diverged")
    return took
