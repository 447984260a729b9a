"""Self-tests of the harness parts that need no root: waits, processes, the
diskwire environment, the pacer."""

import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from unittest import mock

import dwharness as h
from dwharness import cleanup
from dwharness.shim import Diskwire, shim_path

HERE = os.path.dirname(os.path.abspath(__file__))


class WaitTest(unittest.TestCase):
    def test_wait_for_returns_first_truthy_value(self):
        values = iter([0, None, 7])
        self.assertEqual(h.wait_for(lambda: next(values), 5, "a value"), 7)

    def test_wait_for_timeout_names_condition_and_last_value(self):
        with self.assertRaisesRegex(h.WaitTimeout,
                                    r"waiting for the moon.*last seen: 42"):
            h.wait_for(lambda: False, 0.2, "the moon", last=lambda: 42)

    def test_wait_file_size_sees_missing_then_grown_file(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "f")
            with self.assertRaisesRegex(h.WaitTimeout, r"reach 10 bytes.*last seen: 0"):
                h.wait_file_size(path, 10, 0.2)
            with open(path, "wb") as f:
                f.write(b"x" * 12)
            self.assertEqual(h.wait_file_size(path, 10, 1), 12)

    def test_wait_exit_and_still_running_after(self):
        quick = subprocess.Popen(["true"])
        self.assertEqual(h.wait_exit(quick, 10), 0)
        slow = subprocess.Popen(["sleep", "30"])
        try:
            self.assertTrue(h.still_running_after(slow, 0.3))
            with self.assertRaisesRegex(h.WaitTimeout, "sleep"):
                h.wait_exit(slow, 0.2)
        finally:
            slow.kill()
            slow.wait()
        self.assertFalse(h.still_running_after(slow, 0.3))

    def test_wait_stable_rejects_changing_value(self):
        counter = iter(range(1000000))
        with self.assertRaisesRegex(h.WaitTimeout, "unchanged"):
            h.wait_stable(lambda: next(counter), 0.3, 0.6, "a counter")
        self.assertEqual(h.wait_stable(lambda: 5, 0.2, 2, "a constant"), 5)


class ProcTest(unittest.TestCase):
    def test_stderr_is_kept_for_diagnostics(self):
        with tempfile.TemporaryDirectory() as d:
            proc = h.Proc("talker", ["sh", "-c", "echo oops >&2; exit 3"], log_dir=d)
            self.assertEqual(h.wait_exit(proc, 10), 3)
            self.assertEqual(proc.stderr_tail().strip(), "oops")
            self.assertIn("talker", proc.describe())
            self.assertIn("exited 3", proc.describe())

    def test_kill_ends_the_whole_process_group(self):
        with tempfile.TemporaryDirectory() as d:
            pidfile = os.path.join(d, "grandchild")
            proc = h.Proc("parent", ["sh", "-c", f"sleep 600 & echo $! > {pidfile}; wait"])
            h.wait_for(lambda: h.file_size(pidfile), 10, "the grandchild's pid")
            with open(pidfile) as f:
                grandchild = int(f.read())
            proc.kill()
            self.assertEqual(proc.returncode, -signal.SIGTERM)
            h.wait_for(lambda: not os.path.exists(f"/proc/{grandchild}") or
                       open(f"/proc/{grandchild}/stat").read().split(")")[-1].split()[0] == "Z",
                       10, "the grandchild to end")
            self.assertNotIn(f"process parent ({proc.pid})", cleanup.pending())

    def test_clean_env_drops_diskwire_settings(self):
        with mock.patch.dict(os.environ, {"LD_PRELOAD": "/x.so", "DISKWIRE_SELECT": "1",
                                          "KEEP_ME": "yes"}):
            env = h.clean_env({"EXTRA": "1"})
        self.assertNotIn("LD_PRELOAD", env)
        self.assertNotIn("DISKWIRE_SELECT", env)
        self.assertEqual(env["KEEP_ME"], "yes")
        self.assertEqual(env["EXTRA"], "1")


class FakeNet:
    volume = "/vol"

    def volume_of(self, node):
        return f"{self.volume}-{node}"

    def path(self, name):
        return f"/work/{name}"


class DiskwireEnvTest(unittest.TestCase):
    def test_env_names_node_volume_selection_and_log(self):
        with tempfile.NamedTemporaryFile(suffix=".so") as so, \
                mock.patch.dict(os.environ, {"DW_SHIM": so.name}):
            dw = Diskwire(FakeNet(), 5001, MODE="storage", DETECT_MS=500)
            env = dw.env("b", DETECT_MS=700)
        self.assertEqual(env["LD_PRELOAD"], os.path.realpath(so.name))
        self.assertEqual(env["DISKWIRE_VOLUME"], "/vol-b")
        self.assertEqual(env["DISKWIRE_SELECT"], "5001")
        self.assertEqual(env["DISKWIRE_NODE"], "b")
        self.assertEqual(env["DISKWIRE_MODE"], "storage")
        self.assertEqual(env["DISKWIRE_DETECT_MS"], "700")
        self.assertEqual(env["DISKWIRE_LOG"], "/work/diskwire-b.log")

    def test_run_argv_gives_the_settings_as_flags(self):
        with tempfile.NamedTemporaryFile(suffix=".so") as so, \
                tempfile.NamedTemporaryFile() as cli, \
                mock.patch.dict(os.environ, {"DW_SHIM": so.name, "DW_CLI": cli.name}):
            argv = Diskwire(FakeNet(), 5001, PEER_TIMEOUT_MS=4000).run_argv("a")
        self.assertEqual(argv[:4], [os.path.realpath(cli.name), "run", "--shim",
                                    os.path.realpath(so.name)])
        self.assertEqual(argv[-1], "--")
        flags = dict(zip(argv[4:-1:2], argv[5:-1:2]))
        self.assertEqual(flags, {"--select": "5001", "--peer-timeout-ms": "4000",
                                 "--volume": "/vol-a", "--node": "a",
                                 "--log": "/work/diskwire-a.log"})

    def test_dw_shim_off_runs_without_preload(self):
        with mock.patch.dict(os.environ, {"DW_SHIM": "off"}):
            self.assertEqual(shim_path(), "")
            self.assertNotIn("LD_PRELOAD", Diskwire(FakeNet(), 1).env("a"))

    def test_missing_shim_is_a_clear_error(self):
        with mock.patch.dict(os.environ, {"DW_SHIM": "/nonexistent/libdiskwire.so",
                                          "TEST_SRCDIR": "/nonexistent"}), \
                mock.patch("dwharness.shim._REPO", "/nonexistent"):
            with self.assertRaisesRegex(FileNotFoundError, "bazel build //shim"):
                shim_path()


class PacerTest(unittest.TestCase):
    def run_pacer(self, *args, data=b""):
        return subprocess.run([sys.executable, os.path.join(HERE, "pacer.py"), *args],
                              input=data, capture_output=True, timeout=30)

    def test_copies_everything_at_the_rate(self):
        data = os.urandom(200 * 1024)
        start = time.monotonic()
        out = self.run_pacer("--rate", str(400 * 1024), "--chunk", "16384", data=data)
        elapsed = time.monotonic() - start
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, data)
        self.assertGreaterEqual(elapsed, 0.4)  # 200 KiB at 400 KiB/s, first chunk free.

    def test_rejects_a_bad_rate(self):
        out = self.run_pacer("--rate", "0")
        self.assertEqual(out.returncode, 2)
        self.assertIn(b"--rate", out.stderr)

    def test_gate_holds_the_first_byte(self):
        with tempfile.TemporaryDirectory() as d:
            gate = os.path.join(d, "go")
            proc = subprocess.Popen([sys.executable, os.path.join(HERE, "pacer.py"),
                                     "--rate", "1000000", "--gate", gate],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            proc.stdin.write(b"hello")
            proc.stdin.close()
            self.assertTrue(h.still_running_after(proc, 0.5))
            open(gate, "w").close()
            self.assertEqual(proc.stdout.read(), b"hello")
            self.assertEqual(h.wait_exit(proc, 10), 0)
            proc.stdout.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
