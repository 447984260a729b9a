"""`diskwire enable` / `disable` on a unit that a real systemd starts.

A vendor's unit (it preloads a library of its own, as jemalloc users do) runs a
stock `nc -d -l` in host b's network namespace (NetworkNamespacePath=). The
drop-in that `diskwire enable UNIT --root R` writes puts it under diskwire: a
stock nc on host a streams to it across a silent link cut, byte-exact, and the
service's process maps both the vendor's library and libdiskwire.so. After
`diskwire disable` and a restart, it maps the vendor's library only.

The manager is a real systemd (`systemd --user`, the same service manager
binary as PID 1) whose unit path is R's unit directories plus the stock user
units. A private mount namespace gives it the /run/systemd/system it checks
for; nothing of the host's systemd is touched. systemd as PID 1 is not used:
with the host's root it would run the host's boot units (tmpfiles wipes /tmp).
"""

import os
import shutil
import subprocess
import sys
import tempfile

import dwharness as h
import shim_testbase as base
from dwharness.shim import cli_path

SIZE = 16 * h.MiB
RATE = 4 * h.MiB
UNIT = "dwrecv.service"
SYSTEMD = "/lib/systemd/systemd"
VENDOR_PRELOAD = "/usr/lib/x86_64-linux-gnu/libz.so.1"


class SystemdUnitTest(base.ShimTestCase):
    def setUp(self):
        for program in (SYSTEMD, shutil.which("systemctl") or "systemctl"):
            if not os.path.exists(program):
                self.skipTest(f"SKIPPED: {program} is missing (apt-get install systemd)")
        if not os.path.exists(VENDOR_PRELOAD):
            self.skipTest(f"SKIPPED: {VENDOR_PRELOAD} is missing (not amd64?)")
        super().setUp()
        self.root = self.net.path("root")
        self.output = self.net.path("received")
        os.makedirs(f"{self.root}/etc/systemd/system")
        os.makedirs(f"{self.root}/lib/systemd/system")
        with open(f"{self.root}/lib/systemd/system/{UNIT}", "w") as f:
            f.write("[Unit]\nDescription=nc receiver, a vendor's unit\n"
                    "[Service]\n"
                    f"NetworkNamespacePath=/run/netns/{self.net.b.ns}\n"
                    f'Environment="LD_PRELOAD={VENDOR_PRELOAD}"\n'
                    f"ExecStart={shutil.which('nc')} -d -l {base.PORT}\n"
                    f"StandardOutput=truncate:{self.output}\n")
        # A short path: the manager's socket lives here.
        self.runtime = tempfile.mkdtemp(prefix="dw-sd-")
        self.addCleanup(shutil.rmtree, self.runtime, True)
        self.start_manager()

    def start_manager(self):
        made_run_systemd = not os.path.isdir("/run/systemd")
        os.makedirs("/run/systemd", exist_ok=True)
        if made_run_systemd:
            self.addCleanup(os.rmdir, "/run/systemd")
        unit_path = ":".join([f"{self.root}/etc/systemd/system",
                              f"{self.root}/lib/systemd/system", "/usr/lib/systemd/user"])
        script = ("mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/system && "
                  f"exec {SYSTEMD} --user")
        env = h.clean_env({"XDG_RUNTIME_DIR": self.runtime, "SYSTEMD_UNIT_PATH": unit_path})
        manager = h.Proc("systemd", ["unshare", "-m", "--propagation", "private",
                                     "sh", "-c", script],
                         env=env, log_dir=self.net.workdir)
        self.addCleanup(self.stop_manager, manager)
        h.wait_for(lambda: os.path.exists(f"{self.runtime}/systemd/private"), 20,
                   "systemd --user to listen", last=manager.describe)

    def stop_manager(self, manager):
        self.systemctl("exit", check=False)
        try:
            h.wait_exit(manager, 10)
        except h.WaitTimeout:
            manager.kill()

    def systemctl(self, *args, check=True):
        result = subprocess.run(["systemctl", "--user", "--no-pager"] + list(args),
                                env=h.clean_env({"XDG_RUNTIME_DIR": self.runtime}),
                                capture_output=True, text=True, timeout=30)
        if check:
            self.assertEqual(result.returncode, 0,
                             f"systemctl {' '.join(args)}: {result.stderr}")
        return result

    def diskwire(self, *args):
        result = subprocess.run([cli_path()] + list(args), capture_output=True,
                                text=True, timeout=30, env=h.clean_env())
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    def main_pid(self):
        pid = int(self.systemctl("show", "-p", "MainPID", "--value", UNIT).stdout)
        self.assertNotEqual(pid, 0, self.systemctl("status", UNIT, check=False).stdout)
        return pid

    def start_unit(self):
        self.systemctl("start", UNIT)
        h.wait_for(lambda: self.net.b.listening(base.PORT), 20, "the unit's nc to listen",
                   last=lambda: self.systemctl("status", UNIT, check=False).stdout)
        pid = self.main_pid()
        with open(f"/proc/{pid}/maps") as f:
            libraries = {os.path.basename(line.split()[-1])
                         for line in f if line.rstrip().endswith(".so") or ".so." in line}
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(entry.split(b"=", 1) for entry in f.read().split(b"\0") if b"=" in entry)
        return libraries, env.get(b"LD_PRELOAD", b"").decode()

    def test_enabled_unit_survives_a_cut_and_disable_takes_it_back(self):
        said = self.diskwire("enable", UNIT, "--root", self.root, *self.dw.flags("b"))
        self.assertIn("systemd not reloaded (--root)", said)
        dropin = f"{self.root}/etc/systemd/system/{UNIT}.d/diskwire.conf"
        self.assertTrue(os.path.isfile(dropin))

        libraries, preload = self.start_unit()
        self.assertIn("libdiskwire.so", libraries, preload)
        self.assertTrue(any(lib.startswith("libz.so") for lib in libraries), libraries)
        self.assertEqual(preload, f"{VENDOR_PRELOAD}:{self.dw.preload}")

        source = self.net.path("sent")
        sha = h.make_data(source, SIZE)
        pacer = self.net.a.popen("pacer", h.pacer_argv(RATE, source), stdout=subprocess.PIPE)
        sender = self.net.a.popen("send", ["nc", "-N", self.net.b.addr, str(base.PORT)],
                                  env=h.clean_env(self.dw.env("a")), stdin=pacer.popen.stdout)
        pacer.popen.stdout.close()
        h.wait_file_size(self.output, SIZE // 4, 30)
        self.net.cuts.link_down("a")
        bound = base.transfer_bound(SIZE, RATE)
        h.wait_for(lambda: self.systemctl("is-active", UNIT, check=False).stdout.strip()
                   != "active", bound, "the unit's nc to end", last=self.dw.logs)
        self.assertEqual(h.wait_exit(sender, 10), 0, self.context())
        result = self.systemctl("show", "-p", "ExecMainStatus", "--value", UNIT)
        self.assertEqual(result.stdout.strip(), "0", self.context())
        self.assertEqual(h.sha256_file(self.output), sha, self.context())
        # The drop-in's settings reached the service: its diskwire log is the
        # one enable named, and it carried the stream over the volume.
        self.assertGreater(self.log_lines("b", "first byte via storage"), 0, self.context())

        said = self.diskwire("disable", UNIT, "--root", self.root)
        self.assertIn("systemd not reloaded (--root)", said)
        self.assertFalse(os.path.exists(dropin))
        self.systemctl("daemon-reload")
        libraries, preload = self.start_unit()
        self.assertNotIn("libdiskwire.so", libraries)
        self.assertTrue(any(lib.startswith("libz.so") for lib in libraries), libraries)
        self.assertEqual(preload, VENDOR_PRELOAD)


if __name__ == "__main__":
    base.main()
