"""Two hosts that report one node name (issue 12, defect 5; both namespaces
named `vm`, say) are told, clearly, naming both hosts' addresses."""

import dwharness as h
import shim_testbase as base

SIZE = 2 * h.MiB
RATE = 1 * h.MiB


class NodeNameTest(base.ShimTestCase):
    def test_same_node_name_on_two_hosts_is_reported(self):
        xfer = h.NcTransfer(self.net, size=SIZE, rate=RATE, port=base.PORT,
                            env_sender=self.dw.env("a", NODE="vm"),
                            env_receiver=self.dw.env("b", NODE="vm")).start()
        self.assert_byte_exact(xfer, base.transfer_bound(SIZE, RATE))
        logs = self.dw.logs(limit=100000)
        clashes = [line for line in logs.splitlines()
                   if 'node name "vm" is used by two hosts' in line]
        self.assertTrue(clashes, logs)
        both = [line for line in clashes
                if self.net.a.addr in line and self.net.b.addr in line]
        self.assertTrue(both, clashes)

    def test_distinct_names_are_not_reported(self):
        xfer = self.nc(SIZE, RATE).start()
        self.assert_byte_exact(xfer, base.transfer_bound(SIZE, RATE))
        self.assertNotIn("is used by two hosts", self.dw.logs(limit=100000))


if __name__ == "__main__":
    base.main()
