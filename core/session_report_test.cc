#include "core/session_report.h"

#include "base/status_matchers.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

SessionReport Sample() {
  SessionReport s;
  s.id = SessionId{0x1122334455667788ULL, 0x99aabbccddeeff00ULL};
  s.role = Role::kServer;
  s.state = "STORAGE";
  s.local = "10.77.0.2:7000";
  s.remote = "10.77.0.1:40000";
  s.bytes_out_network = 1;
  s.bytes_out_storage = 2;
  s.bytes_in_network = 3;
  s.bytes_in_storage = 4;
  s.sent_offset = 5;
  s.delivered_offset = 6;
  s.peer_ack_offset = 7;
  s.failover_ms = 1234;
  s.lag_p50_us = 150;
  s.lag_p99_us = 900;
  s.lag_max_us = 2000;
  s.claim_ns = 1796228517042886638;
  return s;
}

TEST(SessionReport, RoundTrips) {
  ProcessReport r;
  r.sessions.push_back(Sample());
  r.sessions.push_back(SessionReport{});
  ASSERT_OK_AND_ASSIGN(ProcessReport back,
                       DecodeProcessReport(EncodeProcessReport(r)));
  EXPECT_EQ(back, r);
}

TEST(SessionReport, ResumeEndpointRoundTrips) {
  ProcessReport r;
  r.resume_port = 40123;
  r.resume_nonce = std::string("\x00\xff\x10 nonce", 9);
  r.host = "0b5e1d2c-6c1f-4e4f-9d7a-3f2b1c0d9e8f/4026531840";
  r.addresses = "10.77.0.2,fd00::2";
  r.version = "0.2.0";
  r.sessions.push_back(Sample());
  r.sessions.back().problem = "volume-full";
  const std::string text = EncodeProcessReport(r);
  EXPECT_THAT(text, testing::HasSubstr(" version=0.2.0\n"));
  EXPECT_THAT(text, testing::HasSubstr(" problem=volume-full\n"));
  EXPECT_THAT(text,
              testing::HasSubstr("process resume_port=40123 nonce=00ff10"));
  ASSERT_OK_AND_ASSIGN(ProcessReport back, DecodeProcessReport(text));
  EXPECT_EQ(back, r);
  EXPECT_THAT(
      DecodeProcessReport("diskwire-sessions 1\nprocess nonce=xyz\n"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               testing::HasSubstr("line 2: bad value \"xyz\" for nonce")));
}

TEST(SessionReport, ListenersRoundTripAndAreChecked) {
  ProcessReport r;
  r.addresses = "10.77.0.2";
  r.listeners = {"10.77.0.2:5001", "[::]:22/v6only"};
  const std::string text = EncodeProcessReport(r);
  EXPECT_THAT(text, testing::HasSubstr("\nlisten 10.77.0.2:5001\n"));
  ASSERT_OK_AND_ASSIGN(ProcessReport back, DecodeProcessReport(text));
  EXPECT_EQ(back, r);
  EXPECT_THAT(DecodeProcessReport("diskwire-sessions 1\nlisten 10.0.0.1\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       testing::HasSubstr("line 2: bad listening address")));
}

TEST(SessionReport, UdpRelayRoundTripsAndIsChecked) {
  ProcessReport r;
  r.udp.tag = "0123456789abcdef";
  r.udp.probe_port = 40001;
  r.udp.out_storage = 7;
  r.udp.in_storage = 9;
  r.udp.dropped = 1;
  r.udp.receivers = {"10.77.0.2:5405", "[::]:5405"};
  const std::string text = EncodeProcessReport(r);
  EXPECT_THAT(text, testing::HasSubstr("\nudp_receiver 10.77.0.2:5405\n"));
  ASSERT_OK_AND_ASSIGN(ProcessReport back, DecodeProcessReport(text));
  EXPECT_EQ(back, r);
  EXPECT_THAT(
      DecodeProcessReport("diskwire-sessions 1\nudp tag=xyz\n"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               testing::HasSubstr("line 2: bad value \"xyz\" for tag")));
  EXPECT_THAT(
      DecodeProcessReport("diskwire-sessions 1\nudp_receiver nowhere\n"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               testing::HasSubstr("line 2: bad UDP receiver address")));
}

TEST(SessionReport, EmptyReportRoundTrips) {
  ASSERT_OK_AND_ASSIGN(ProcessReport back,
                       DecodeProcessReport(EncodeProcessReport({})));
  EXPECT_TRUE(back.sessions.empty());
}

TEST(SessionReport, SkipsUnknownKeysAndLines) {
  ASSERT_OK_AND_ASSIGN(
      ProcessReport back,
      DecodeProcessReport(
          "diskwire-sessions 1\nfuture-line x\nsession "
          "0000000000000001000000000000000f state=DIRECT colour=blue\n"));
  ASSERT_EQ(back.sessions.size(), 1u);
  EXPECT_EQ(back.sessions[0].state, "DIRECT");
  EXPECT_EQ(back.sessions[0].id.low, 15u);
}

TEST(SessionReport, RejectsForeignPayload) {
  EXPECT_THAT(DecodeProcessReport("hello"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       testing::HasSubstr("diskwire-sessions")));
}

TEST(SessionReport, RejectsBadNumbersNamingTheLine) {
  EXPECT_THAT(
      DecodeProcessReport("diskwire-sessions 1\nsession "
                          "0000000000000001000000000000000f sent=12x\n"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               testing::AllOf(testing::HasSubstr("line 2"),
                              testing::HasSubstr("sent"))));
  EXPECT_THAT(DecodeProcessReport("diskwire-sessions 1\nsession nothex\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       testing::HasSubstr("line 2")));
}

}  // namespace
}  // namespace diskwire
