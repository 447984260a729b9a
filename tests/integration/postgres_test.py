"""Stock PostgreSQL on b, running as its own user, and pgbench as root on a,
both under diskwire on one volume that the operator shared between users
(mode 1777, docs/CONFIG.md). The postmaster forks a backend for every
connection. The link is cut for 6 s in the middle of a pgbench run (four
connections, each a stream of transactions) and a second pgbench opens a new
connection for every transaction from just after the cut to past the heal:
every transaction commits, no backend fails or hangs, and the server logs no
error.

Found: backends that closed a file under a number the engine had used
(EBADF, FATAL), backends hung on an engine lock inherited from the fork, and
connections refused over the volume because the root client's inbox was not
writable by the postgres user."""

import glob
import os
import shutil
import subprocess
import time

import dwharness as h
from dwharness.shim import shim_path
import shim_testbase as base

PGBIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
AS_POSTGRES = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]


class PostgresTest(base.ShimTestCase):
    # Where the postgres user reaches the volume and its data (bazel's
    # temporary directory is under /root).
    workdir_parent = "/tmp"
    def setUp(self):
        if not PGBIN or not shutil.which("pgbench"):
            self.skipTest("PostgreSQL is not installed (scripts/setup installs it)")
        super().setUp()
        if self.volume != "shared":
            self.skipTest("shares a directory volume between users")
        # What an operator does: the volume shared between the users of the
        # host, the preload and the logs readable by the database's user.
        os.chmod(self.net.workdir, 0o755)
        os.chmod(self.net.volume, 0o1777)
        lib = self.net.path("lib")
        os.mkdir(lib)
        for name in ("libdiskwire.so", "libdiskwire_engine.so"):
            shutil.copy(os.path.join(os.path.dirname(shim_path()), name), lib)
        self.preload = os.path.join(lib, "libdiskwire.so")
        for node in ("a", "b"):
            open(self.dw.log_path(node), "a").close()
            os.chmod(self.dw.log_path(node), 0o666)

    def env(self, node):
        env = dict(self.dw.env(node))
        env["LD_PRELOAD"] = self.preload
        return h.clean_env(env)

    def start_postgres(self):
        data = self.net.path("pg")
        os.mkdir(data)
        shutil.chown(data, "postgres", "postgres")
        subprocess.run(AS_POSTGRES + [f"{PGBIN[-1]}/initdb", "-D", data, "-A", "trust",
                                      "-U", "postgres"],
                       check=True, capture_output=True, timeout=120)
        with open(f"{data}/postgresql.conf", "a") as f:
            f.write(f"listen_addresses = '{self.net.b.addr}'\nport = {base.PORT}\n"
                    f"unix_socket_directories = '{data}'\nmax_connections = 50\n"
                    "fsync = off\n")
        with open(f"{data}/pg_hba.conf", "a") as f:
            f.write("host all all 0.0.0.0/0 trust\n")
        server = self.net.b.popen("postgres", AS_POSTGRES + [f"{PGBIN[-1]}/postgres", "-D", data],
                                  env=self.env("b"))
        h.wait_for(lambda: self.net.b.listening(base.PORT), 60, "postgres to listen",
                   last=server.describe)
        return server

    def pgbench(self, name, *args):
        out = open(self.net.path(f"{name}.out"), "wb")
        self.addCleanup(out.close)
        return self.net.a.popen(
            name, ["pgbench", "-h", self.net.b.addr, "-p", str(base.PORT), "-U", "postgres",
                   *args, "postgres"], env=self.env("a"), stdout=out)

    def test_pgbench_through_a_cut_and_connecting_during_it(self):
        server = self.start_postgres()
        init = self.pgbench("pgbench-init", "-i", "-s", "2")
        self.assertEqual(h.wait_exit(init, 120), 0, init.describe() + self.context())
        streams = self.pgbench("pgbench-streams", "-c", "4", "-T", "16")
        self.assertTrue(h.still_running_after(streams, 4), streams.describe() + self.context())
        self.net.cuts.link_down("a")
        time.sleep(1)
        connects = self.pgbench("pgbench-connects", "-c", "2", "-C", "-T", "8")
        time.sleep(5)
        self.net.cuts.link_up("a")
        for proc in (streams, connects):
            self.assertEqual(h.wait_exit(proc, 120), 0, proc.describe() + self.context())
        for name in ("pgbench-streams", "pgbench-connects"):
            with open(self.net.path(f"{name}.out")) as f:
                self.assertIn("number of failed transactions: 0 ", f.read(), name)
        with open(os.path.join(self.net.b.workdir, "b-postgres.stderr")) as f:
            errors = [line for line in f
                      if any(word in line for word in ("FATAL", "PANIC", "ERROR",
                                                       "terminated by signal", "crash"))]
        self.assertEqual(errors, [], self.context())
        self.assertIsNone(server.poll(), "postgres still runs")
        # The cut was carried: streams over the volume, connections opened
        # over it, and back on the network after the heal.
        self.assertGreaterEqual(self.log_lines("a", "failing over to storage"), 1, self.context())
        self.assertGreaterEqual(self.log_lines("a", "opened over the volume"), 1, self.context())
        self.assertGreaterEqual(self.log_lines("a", "back on the network"), 1, self.context())


if __name__ == "__main__":
    base.main()
