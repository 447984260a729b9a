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
        try:
            status = h.wait_exit(curl, base.transfer_bound(SIZE, RATE))
        except h.WaitTimeout as e:
            self.fail(f"{e}: received {h.file_size(out)} of {SIZE}\n"
                      f"{curl.describe()}\n{self.context()}")
        self.assertEqual(status, 0, f"{curl.describe()}\n{self.context()}")
        self.assertEqual(h.file_size(out), SIZE)
        self.assertEqual(h.sha256_file(out), sha_sent)


if __name__ == "__main__":
    base.main()
