// File: storage/volume_contract.h
// Checks of the Volume interface that every backend must pass the same way,
// called from each backend's own test (dir_volume_test, lun_volume_test).
// Test-only.

#ifndef DISKWIRE_STORAGE_VOLUME_CONTRACT_H_
#define DISKWIRE_STORAGE_VOLUME_CONTRACT_H_

#include <gtest/gtest.h>

#include <string>

#include "base/status_matchers.h"
#include "storage/test_util.h"
#include "storage/volume.h"

namespace diskwire::storage {

// StatChannel: NotFound before the channel exists and after its removal; an
// identity that survives appends, rotation and trims and changes when the
// channel is created again; trimmed_below following TrimBelow.
// `extent_bytes`: the backend's segment (or extent) size.
inline void ExpectChannelStatFollowsTrimsAndRemoval(Volume& v,
                                                    uint64_t extent_bytes) {
  using ::testing::HasSubstr;
  EXPECT_THAT(v.StatChannel("stat.c"), StatusIs(absl::StatusCode::kNotFound));
  WriterOptions w;
  w.segment_bytes = extent_bytes;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ChannelWriter> writer,
                       v.OpenWriter("stat.c", w));
  ASSERT_THAT(writer->Append({DataRecord(0, "first")}), IsOk());
  ASSERT_OK_AND_ASSIGN(ChannelStat born, v.StatChannel("stat.c"));
  EXPECT_NE(born.identity, 0u);
  EXPECT_EQ(born.trimmed_below, 0u);
  // Four segments' worth, in records of a quarter segment.
  const std::string chunk(extent_bytes / 4, 'x');
  uint64_t off = 5;
  for (int i = 0; i < 16; ++i) {
    ASSERT_THAT(writer->Append({DataRecord(off, chunk)}), IsOk());
    off += chunk.size();
  }
  ASSERT_OK_AND_ASSIGN(ChannelStat grown, v.StatChannel("stat.c"));
  EXPECT_EQ(grown.identity, born.identity);
  EXPECT_EQ(grown.trimmed_below, 0u) << "nothing was trimmed yet";
  ASSERT_THAT(writer->TrimBelow(off), IsOk());
  ASSERT_OK_AND_ASSIGN(ChannelStat trimmed, v.StatChannel("stat.c"));
  EXPECT_EQ(trimmed.identity, born.identity);
  EXPECT_GT(trimmed.trimmed_below, extent_bytes)
      << "whole segments below the trim point are gone";
  EXPECT_LE(trimmed.trimmed_below, off) << "the active segment stays";
  // A reader from the trim point still gets the records there.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ChannelReader> reader,
                       v.OpenReader("stat.c", trimmed.trimmed_below));
  std::vector<Record> got;
  ASSERT_OK_AND_ASSIGN(size_t n, reader->ReadAvailable(&got, 1 << 20));
  ASSERT_GT(n, 0u);
  EXPECT_GE(got[0].header.stream_offset + got[0].payload.size(),
            trimmed.trimmed_below);

  ASSERT_THAT(writer->Close(), IsOk());
  ASSERT_THAT(v.RemoveChannel("stat.c"), IsOk());
  EXPECT_THAT(v.StatChannel("stat.c"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("stat.c")));
  ASSERT_OK_AND_ASSIGN(writer, v.OpenWriter("stat.c", w));
  ASSERT_THAT(writer->Append({DataRecord(0, "again")}), IsOk());
  ASSERT_OK_AND_ASSIGN(ChannelStat reborn, v.StatChannel("stat.c"));
  EXPECT_NE(reborn.identity, born.identity)
      << "a channel created again under its name is another channel";
  EXPECT_THAT(v.StatChannel("Bad/Name"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// CopyHeartbeat keeps the publisher's node, pid, time and payload, and a
// later copy replaces an earlier one.
inline void ExpectCopiedHeartbeatsKeepTheirPublisher(Volume& v) {
  Heartbeat h{"other.77.1", "far-node", 77, 1'800'000'000'000'000'000, 5,
              "report"};
  ASSERT_THAT(v.CopyHeartbeat(h), IsOk());
  h.time_ns += 1'000'000'000;
  h.sequence = 6;
  h.payload = "report 2";
  ASSERT_THAT(v.CopyHeartbeat(h), IsOk());
  ASSERT_OK_AND_ASSIGN(HeartbeatListing listing, v.ListHeartbeats());
  ASSERT_EQ(listing.heartbeats.size(), 1u);
  const Heartbeat& got = listing.heartbeats[0];
  EXPECT_EQ(got.process_id, "other.77.1");
  EXPECT_EQ(got.node, "far-node");
  EXPECT_EQ(got.pid, 77);
  EXPECT_EQ(got.time_ns, h.time_ns);
  EXPECT_GE(got.sequence, 6u);
  EXPECT_EQ(got.payload, "report 2");
  EXPECT_THAT(v.CopyHeartbeat({"../x", "n", 1, 1, 1, ""}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// DeliverInbox removes a message only once `deliver` took it: a refusal
// leaves it (and what follows) pending, and ListInboxes names the
// destination meanwhile.
inline void ExpectInboxMessagesStayUntilDelivered(Volume& sender,
                                                  Volume& receiver) {
  ASSERT_THAT(sender.PostToInbox("dst.1", "m1", "one"), IsOk());
  ASSERT_THAT(sender.PostToInbox("dst.1", "m2", "two"), IsOk());
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> inboxes,
                       receiver.ListInboxes());
  EXPECT_THAT(inboxes, ::testing::Contains("dst.1"));
  std::vector<std::string> problems;
  std::vector<std::string> delivered;
  absl::Status s = receiver.DeliverInbox(
      "dst.1",
      [&](InboxMessage m) {
        if (m.name == "m2") return absl::ResourceExhaustedError("full");
        delivered.push_back(m.name + "=" + m.payload);
        return absl::OkStatus();
      },
      &problems);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(delivered, ::testing::ElementsAre("m1=one"));
  ASSERT_OK_AND_ASSIGN(InboxListing rest, receiver.TakeInbox("dst.1"));
  ASSERT_EQ(rest.messages.size(), 1u) << "the refused message is still there";
  EXPECT_EQ(rest.messages[0].name, "m2");
  EXPECT_EQ(rest.messages[0].payload, "two");
  ASSERT_OK_AND_ASSIGN(InboxListing none, receiver.TakeInbox("dst.1"));
  EXPECT_TRUE(none.messages.empty());
  EXPECT_TRUE(problems.empty());
}

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_VOLUME_CONTRACT_H_
