"""Stock curl downloads a large file from Python's http.server, both under
diskwire; the link is cut silently mid-download and left cut."""

import dwharness as h
import shim_testbase as base

SIZE = 32 * h.MiB
RATE = 8 * h.MiB  # curl --limit-rate, bytes/s


class CurlHttpTest(base.ShimTestCase):
    def test_download_survives_a_silent_cut(self):
        server, sha_sent = self.start_http_server(SIZE)
        out = self.net.path("download.bin")
        curl = self.net.a.popen(
            "curl", ["curl", "-sS", "--fail", "--limit-rate", str(RATE), "-o", out,
                     f"http://{self.net.b.addr}:{base.PORT}/data.bin"],
            env=h.clean_env(self.dw.env("a")))
        h.wait_file_size(out, SIZE // 4, 30)
        self.net.cuts.link_down("a")
        self.assert_received(curl, out, SIZE, sha_sent,
                             base.transfer_bound(SIZE, RATE))


if __name__ == "__main__":
    base.main()
