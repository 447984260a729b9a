#include "core/datagram_wire.h"

#include "base/status_matchers.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

MappedAddress Endpoint(const std::string& text) {
  absl::StatusOr<sockaddr_storage> addr = ParseAddress(text);
  EXPECT_THAT(addr, IsOk());
  MappedAddress m;
  EXPECT_TRUE(addr.ok() && ToMapped(*addr, &m));
  return m;
}

TEST(DatagramWireTest, CarriedDatagramRoundTripsWithItsBoundaries) {
  const MappedAddress from = Endpoint("10.0.0.1:5405");
  const MappedAddress to = Endpoint("[fd00::2]:40000");
  for (const std::string& data :
       {std::string(), std::string("x"), std::string(65507, '\0')}) {
    const std::string payload = EncodeCarriedDatagram(from, to, data);
    EXPECT_EQ(payload.size(), kCarriedHeaderSize + data.size());
    ASSERT_OK_AND_ASSIGN(CarriedDatagram d, DecodeCarriedDatagram(payload));
    EXPECT_EQ(d.from, from);
    EXPECT_EQ(d.to, to);
    EXPECT_EQ(d.data, data);
  }
}

TEST(DatagramWireTest, ShortOrForeignPayloadsAreRefusedWithAReason) {
  const std::string good =
      EncodeCarriedDatagram(Endpoint("10.0.0.1:1"), Endpoint("10.0.0.2:2"), "");
  EXPECT_THAT(DecodeCarriedDatagram(good.substr(0, 10)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       testing::HasSubstr("shorter than its 37-byte header")));
  std::string newer = good;
  newer[0] = 9;
  EXPECT_THAT(DecodeCarriedDatagram(newer),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       testing::HasSubstr("version 9")));
}

TEST(DatagramWireTest, ProbeRoundTripsAndStrayBytesAreNotProbes) {
  DatagramProbe ping;
  ping.kind = DatagramProbe::Kind::kPong;
  ping.nonce = 0x0102030405060708;
  ping.sequence = 0xfffffffffffffffe;
  const std::string bytes = EncodeProbe(ping);
  ASSERT_EQ(bytes.size(), kProbeSize);
  std::optional<DatagramProbe> back = DecodeProbe(bytes);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->kind, DatagramProbe::Kind::kPong);
  EXPECT_EQ(back->nonce, ping.nonce);
  EXPECT_EQ(back->sequence, ping.sequence);
  EXPECT_FALSE(DecodeProbe(bytes.substr(1)).has_value());
  EXPECT_FALSE(DecodeProbe(std::string(kProbeSize, 'x')).has_value());
  std::string bad_kind = bytes;
  bad_kind[4] = 7;
  EXPECT_FALSE(DecodeProbe(bad_kind).has_value());
}

}  // namespace
}  // namespace diskwire
