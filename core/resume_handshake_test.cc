#include "core/resume_handshake.h"

#include "base/status_matchers.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

class ResumeHandshakeTest : public testing::Test {
 protected:
  ResumeSecret Secret(absl::string_view key = "", uint32_t episode = 1) {
    return ResumeSecret::Derive(key, client_nonce_, server_nonce_, id_,
                                episode);
  }

  ResumeMessage Hello() {
    ResumeMessage m;
    m.kind = ResumeKind::kHello;
    m.session = id_;
    m.episode = 1;
    m.kept_from = 0x0102030405060708ULL;
    m.challenge = challenge_;
    return m;
  }

  const std::string client_nonce_ = RandomBytes(kResumeNonceBytes);
  const std::string server_nonce_ = RandomBytes(kResumeNonceBytes);
  const std::string challenge_ = RandomBytes(kResumeChallengeBytes);
  const SessionId id_{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
};

TEST_F(ResumeHandshakeTest, HelloRoundTripsAndVerifies) {
  std::string wire = EncodeResume(Hello(), Secret(), "");
  EXPECT_EQ(wire.size(), ResumeMessageSize(wire));
  ASSERT_OK_AND_ASSIGN(ResumeMessage m, DecodeResume(wire));
  EXPECT_EQ(m.kind, ResumeKind::kHello);
  EXPECT_EQ(m.session, id_);
  EXPECT_EQ(m.episode, 1u);
  EXPECT_EQ(m.kept_from, 0x0102030405060708ULL);
  EXPECT_EQ(m.challenge, challenge_);
  EXPECT_TRUE(VerifyResume(m, Secret(), ""));
}

TEST_F(ResumeHandshakeTest, ReadyCarriesTheOffset) {
  ResumeMessage r;
  r.kind = ResumeKind::kReady;
  r.delivered = 0x1122334455667788ULL;
  std::string wire = EncodeResume(r, Secret(), "ab");
  ASSERT_OK_AND_ASSIGN(ResumeMessage m, DecodeResume(wire));
  EXPECT_EQ(m.delivered, r.delivered);
  EXPECT_TRUE(VerifyResume(m, Secret(), "ab"));
  EXPECT_FALSE(VerifyResume(m, Secret(), "ac")) << "another transcript";
}

TEST_F(ResumeHandshakeTest, AnyOtherSecretFails) {
  std::string wire = EncodeResume(Hello(), Secret(), "");
  ASSERT_OK_AND_ASSIGN(ResumeMessage m, DecodeResume(wire));
  EXPECT_FALSE(VerifyResume(m, Secret(std::string(32, 'k')), ""))
      << "a volume key changes the secret";
  EXPECT_FALSE(VerifyResume(m, Secret("", 2), "")) << "another episode";
  ResumeSecret other = ResumeSecret::Derive("", RandomBytes(kResumeNonceBytes),
                                            server_nonce_, id_, 1);
  EXPECT_FALSE(VerifyResume(m, other, "")) << "another client nonce";
}

TEST_F(ResumeHandshakeTest, FlippedBitFailsVerification) {
  std::string wire = EncodeResume(Hello(), Secret(), "");
  for (size_t i = 4; i < wire.size(); ++i) {
    std::string bad = wire;
    bad[i] ^= 1;
    ASSERT_OK_AND_ASSIGN(ResumeMessage m, DecodeResume(bad));
    EXPECT_FALSE(VerifyResume(m, Secret(), "")) << "byte " << i;
  }
}

TEST_F(ResumeHandshakeTest, ForeignBytesAreNoMessage) {
  EXPECT_EQ(ResumeMessageSize("GET / HTTP/1.1"), 0u);
  EXPECT_EQ(ResumeMessageSize("DWZ"), 0u);
  EXPECT_EQ(ResumeMessageSize("D"), 0u);
  EXPECT_THAT(DecodeResume("SSH-2.0-OpenSSH"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  std::string wire = EncodeResume(Hello(), Secret(), "");
  EXPECT_THAT(DecodeResume(wire.substr(0, wire.size() - 1)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  wire[3] = 9;
  EXPECT_THAT(DecodeResume(wire), StatusIs(absl::StatusCode::kInvalidArgument,
                                           testing::HasSubstr("version 9")));
}

}  // namespace
}  // namespace diskwire
