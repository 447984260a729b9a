"""Network cuts between the two hosts.

Every cut acts only inside the harness's own namespaces, on the veth "dw0":

- link_down: `ip link set dw0 down` on one side; silent (no error is sent,
  packets vanish). Left down until link_up/restore.
- blackhole: iptables DROP on one side's link, inbound, outbound or both.
- one_way: packets from one host to the other are dropped, the reverse
  direction still flows (a one-way partition).
- reset: iptables REJECT --reject-with tcp-reset: the sender of each TCP
  segment gets a RST instead of silence.
- flap: down, up, several times (start_flap runs it in the background).
- restore: removes every rule and brings both sides up with their routes.

Thread safety: methods may be called from a flap thread and the test thread,
but a test should not issue two cuts on the same side at once.
"""

import threading
import time

LINK = "dw0"


class Cuts:
    """Cut controls of a TwoHosts (available as `net.cuts`)."""

    def __init__(self, net):
        self._net = net
        self.log = []  # (monotonic time, description) of every cut and restore

    def _note(self, what):
        self.log.append((time.monotonic(), what))

    def link_down(self, side="a"):
        """Takes `side`'s end of the link down silently."""
        self._net.link_down(side)
        self._note(f"link down on {side}")

    def link_up(self, side="a"):
        """Brings `side`'s end back up and restores its routes."""
        self._net.link_up(side)
        self._note(f"link up on {side}")

    def blackhole(self, side="b", direction="both"):
        """DROPs packets on `side`'s link: direction "in", "out" or "both"."""
        host = self._net.host(side)
        if direction in ("in", "both"):
            host.iptables("-A", "INPUT", "-i", LINK, "-j", "DROP")
        if direction in ("out", "both"):
            host.iptables("-A", "OUTPUT", "-o", LINK, "-j", "DROP")
        if direction not in ("in", "out", "both"):
            raise ValueError(f"blackhole direction must be in, out or both, "
                             f"not {direction!r}")
        self._note(f"blackhole {direction} on {side}")

    def one_way(self, src="a"):
        """Drops every packet from `src` to the other host; the other way works."""
        self.blackhole(side=src, direction="out")

    def reset(self, side="b", direction="both"):
        """Answers TCP segments on `side`'s link with a RST.

        "in": segments arriving at `side` are rejected, so the other host's
        socket is reset. "both" also rejects `side`'s own outgoing segments,
        which resets `side`'s sockets as soon as they send.
        """
        host = self._net.host(side)
        # RSTs are exempt, or the OUTPUT rule would swallow the RSTs that the
        # INPUT rule generates (they leave through OUTPUT as well).
        reject = ["-p", "tcp", "!", "--tcp-flags", "RST", "RST",
                  "-j", "REJECT", "--reject-with", "tcp-reset"]
        if direction not in ("in", "both"):
            raise ValueError(f"reset direction must be in or both, not {direction!r}")
        host.iptables("-A", "INPUT", "-i", LINK, *reject)
        if direction == "both":
            host.iptables("-A", "OUTPUT", "-o", LINK, *reject)
        self._note(f"reset {direction} on {side}")

    def flap(self, down_s, up_s, times, side="a", stop=None):
        """Link down for `down_s` s, up for `up_s` s, `times` times (blocking).

        The sleeps here are the fault's schedule, not synchronisation. `stop`
        (a threading.Event) ends the flapping early, with the link up.
        """
        stop = stop or threading.Event()
        for _ in range(times):
            self.link_down(side)
            stop.wait(down_s)
            self.link_up(side)
            if stop.wait(up_s):
                return

    def start_flap(self, down_s, up_s, times, side="a"):
        """Runs flap() in a thread; returns a Flapper to join or stop."""
        return Flapper(self, down_s, up_s, times, side)

    def restore(self):
        """Removes every iptables rule and brings both ends of the link up."""
        for host in (self._net.a, self._net.b):
            host.iptables("-F", "INPUT")
            host.iptables("-F", "OUTPUT")
            self._net.link_up(host.name)
        self._note("restored")


class Flapper:
    """A flap running in the background; join() re-raises its error."""

    def __init__(self, cuts, down_s, up_s, times, side):
        self._stop = threading.Event()
        self.error = None
        self._thread = threading.Thread(
            target=self._run, args=(cuts, down_s, up_s, times, side), daemon=True)
        self._thread.start()

    def _run(self, cuts, *args):
        try:
            cuts.flap(*args, stop=self._stop)
        except Exception as e:
            self.error = e

    def join(self, timeout=None):
        """Waits for the flapping to finish; True when it has."""
        self._thread.join(timeout)
        if self.error:
            raise self.error
        return not self._thread.is_alive()

    def stop(self):
        self._stop.set()
        self._thread.join()
