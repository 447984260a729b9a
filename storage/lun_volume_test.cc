// The LUN backend on an image file: format, channels across extents, trim and
// backpressure, recovery of a torn tail, heartbeats, inboxes, claims, and
// the errors an operator sees for bad input.

#include "storage/lun_volume.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "base/status_matchers.h"
#include "storage/lun_device.h"
#include "storage/lun_format.h"
#include "storage/lun_test_util.h"
#include "storage/test_util.h"
#include "storage/volume_contract.h"
#include "storage/volume_open.h"

namespace diskwire::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class LunVolumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    image_ = dir_.path() + "/lun.img";
    LunFormatRequest r;
    r.slots = 8;
    r.extent_bytes = 128 << 10;
    r.heartbeat_bytes = 16 << 10;
    r.outbox_cells = 4;
    ASSERT_OK_AND_ASSIGN(geometry_, MakeLunImage(image_, 64ull << 20, r));
  }
  static void MakeImage(const std::string& path, uint64_t bytes) {
    ASSERT_THAT(MakeImageFile(path, bytes), IsOk());
  }
  std::unique_ptr<Volume> Open(const std::string& node,
                               absl::Duration lease = absl::Seconds(30)) {
    LunVolumeOptions o;
    o.node = node;
    o.lease = lease;
    absl::StatusOr<std::unique_ptr<Volume>> v = OpenLunVolume(image_, o);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? std::move(*v) : nullptr;
  }
  // Everything the reader delivers until it has `until` stream bytes.
  static std::string ReadStream(ChannelReader& r, uint64_t until,
                                uint64_t from = 0) {
    std::string got;
    for (int i = 0; i < 10000 && got.size() < until; ++i) {
      std::vector<Record> records;
      absl::StatusOr<size_t> n = r.ReadAvailable(&records, 1 << 20);
      EXPECT_TRUE(n.ok()) << n.status();
      if (!n.ok()) break;
      for (const Record& rec : records) {
        EXPECT_EQ(rec.header.stream_offset, from + got.size());
        got += rec.payload;
      }
    }
    return got;
  }

  ScratchDir dir_;
  std::string image_;
  LunGeometry geometry_;
};

TEST_F(LunVolumeTest, FormatLaysOutWhatWasAskedAndIsFoundAgain) {
  EXPECT_EQ(geometry_.slots, 8u);
  EXPECT_EQ(geometry_.extent_bytes, 128u << 10);
  ASSERT_OK_AND_ASSIGN(LunGeometry read, ReadLunGeometry(image_));
  EXPECT_EQ(read.volume_id, geometry_.volume_id);
  EXPECT_EQ(read.extents_per_slot, geometry_.extents_per_slot);
  EXPECT_TRUE(LooksLikeLun(image_));
  EXPECT_FALSE(LooksLikeLun(dir_.path()));
  // A second format without --force is refused: it is a volume already.
  EXPECT_THAT(FormatLun(image_, {}, false),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("a diskwire volume")));
}

TEST_F(LunVolumeTest, FormatRefusesAFilesystemUnlessForced) {
  const std::string img = dir_.path() + "/ext4.img";
  MakeImage(img, 32ull << 20);
  ASSERT_EQ(std::system(
                ("/sbin/mkfs.ext4 -q -F " + img + " >/dev/null 2>&1").c_str()),
            0)
      << "mkfs.ext4 (e2fsprogs) is needed";
  EXPECT_THAT(
      FormatLun(img, {}, false),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               AllOf(HasSubstr(img), HasSubstr("ext4"), HasSubstr("--force"))));
  ASSERT_THAT(FormatLun(img, {}, true).status(), IsOk());
  ASSERT_OK_AND_ASSIGN(std::string sig, ProbeSignature(img));
  EXPECT_EQ(sig, "a diskwire volume");
}

TEST_F(LunVolumeTest, BadInputIsOneLineNamingTheDevice) {
  const std::string small = dir_.path() + "/small.img";
  MakeImage(small, 1 << 20);
  EXPECT_THAT(
      FormatLun(small, {}, false),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("too small")));
  const std::string blank = dir_.path() + "/blank.img";
  MakeImage(blank, 8 << 20);
  EXPECT_THAT(OpenLunVolume(blank, {}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(blank), HasSubstr("diskwire format"))));
  // A flipped bit in the superblock.
  std::string bytes = ReadFileBytes(image_);
  bytes[50] ^= 4;
  WriteFileBytes(image_, bytes);
  EXPECT_THAT(OpenLunVolume(image_, {}),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(image_), HasSubstr("checksum"))));
}

TEST_F(LunVolumeTest, AKeyMustAgreeWithTheFormat) {
  LunVolumeOptions o;
  o.mac_key = std::string(32, 'k');
  EXPECT_THAT(OpenLunVolume(image_, o),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("without --keyed")));
}

TEST_F(LunVolumeTest, AStreamCrossesExtentsByteExactToAnotherProcess) {
  auto a = Open("a");
  auto b = Open("b");
  ASSERT_OK_AND_ASSIGN(auto reader, b->OpenReader("chan.1", 0));
  ASSERT_OK_AND_ASSIGN(auto writer, a->OpenWriter("chan.1", {}));
  // 600 KiB in records of various sizes: about five 128 KiB extents, each
  // trimmed once the reader has it.
  std::string sent;
  std::string got;
  uint64_t off = 0;
  for (int i = 0; sent.size() < (600 << 10); ++i) {
    std::string payload(1 + (i * 7919) % 20000,
                        static_cast<char>('a' + i % 26));
    std::vector<Record> batch = {DataRecord(off, payload)};
    off += payload.size();
    sent += payload;
    ASSERT_THAT(writer->Append(batch), IsOk());
    if (i % 5 == 0) {
      got += ReadStream(*reader, 1, got.size());
      ASSERT_THAT(writer->TrimBelow(got.size()), IsOk());
    }
  }
  got += ReadStream(*reader, sent.size() - got.size(), got.size());
  EXPECT_EQ(got.size(), sent.size());
  EXPECT_TRUE(got == sent) << "the stream differs";
  EXPECT_EQ(writer->end_offset(), sent.size());
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, b->ListChannels());
  EXPECT_THAT(names, ElementsAre("chan.1"));
}

TEST_F(LunVolumeTest, ChannelStatFollowsTrimsAndRemoval) {
  auto a = Open("a");
  ExpectChannelStatFollowsTrimsAndRemoval(*a, geometry_.extent_bytes);
}

TEST_F(LunVolumeTest, CopiedHeartbeatsKeepTheirPublisher) {
  auto a = Open("a");
  ExpectCopiedHeartbeatsKeepTheirPublisher(*a);
}

TEST_F(LunVolumeTest, InboxMessagesStayUntilDelivered) {
  auto a = Open("a");
  auto b = Open("b");
  ExpectInboxMessagesStayUntilDelivered(*a, *b);
}

TEST_F(LunVolumeTest, AReaderStartsAtItsOffsetAndSkipsWhatItHas) {
  auto a = Open("a");
  ASSERT_OK_AND_ASSIGN(auto writer, a->OpenWriter("c", {}));
  ASSERT_THAT(writer->Append({DataRecord(0, "hello "), DataRecord(6, "world")}),
              IsOk());
  auto b = Open("b");
  ASSERT_OK_AND_ASSIGN(auto reader, b->OpenReader("c", 6));
  std::vector<Record> got;
  ASSERT_OK_AND_ASSIGN(size_t n, reader->ReadAvailable(&got, 1 << 20));
  ASSERT_EQ(n, 1u);
  EXPECT_EQ(got[0].payload, "world");
}

// Bytes this process read so far (rchar: every read syscall, O_DIRECT too).
uint64_t BytesRead() {
  std::ifstream io("/proc/self/io");
  std::string key;
  uint64_t value = 0;
  while (io >> key >> value) {
    if (key == "rchar:") return value;
  }
  return 0;
}

TEST_F(LunVolumeTest, ATailingReaderReadsLittleMoreThanWhatArrives) {
  auto a = Open("a");
  auto b = Open("b");
  ASSERT_OK_AND_ASSIGN(auto writer, a->OpenWriter("c", {}));
  ASSERT_THAT(writer->Append({DataRecord(0, "x")}), IsOk());
  ASSERT_OK_AND_ASSIGN(auto reader, b->OpenReader("c", 0));
  ASSERT_EQ(ReadStream(*reader, 1), "x");
  // 200 small records, each read as it arrives (a chatty session): on a SAN
  // every byte read is the array's bandwidth.
  const uint64_t before = BytesRead();
  for (int i = 1; i <= 200; ++i) {
    ASSERT_THAT(writer->Append({DataRecord(i, "y")}), IsOk());
    ASSERT_EQ(ReadStream(*reader, 1, i), "y");
  }
  const uint64_t per_record = (BytesRead() - before) / 200;
  EXPECT_LT(per_record, 16u << 10)
      << "the reader reads far past the writer's end after each record";
}

TEST_F(LunVolumeTest, AFullSlotIsBackpressureUntilTrimmed) {
  auto a = Open("a");
  ASSERT_OK_AND_ASSIGN(auto writer, a->OpenWriter("c", {}));
  const std::string chunk(30000, 'x');
  uint64_t off = 0;
  absl::Status st;
  for (int i = 0; i < 10000 && st.ok(); ++i) {
    st = writer->Append({DataRecord(off, chunk)});
    if (st.ok()) off += chunk.size();
  }
  EXPECT_THAT(
      st, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("extents")));
  ASSERT_THAT(writer->TrimBelow(off), IsOk());
  EXPECT_THAT(writer->Append({DataRecord(off, chunk)}), IsOk());
  // Nothing was lost: a reader from the trim point sees the last record.
  auto b = Open("b");
  ASSERT_OK_AND_ASSIGN(auto reader, b->OpenReader("c", off));
  EXPECT_TRUE(ReadStream(*reader, chunk.size(), off) == chunk);
}

TEST_F(LunVolumeTest, ReopeningCutsATornTailThatNoReaderEverSaw) {
  auto a = Open("a");
  uint32_t slot_extent_offset = 0;
  {
    ASSERT_OK_AND_ASSIGN(auto writer, a->OpenWriter("c", {}));
    ASSERT_THAT(writer->Append({DataRecord(0, "whole")}), IsOk());
    ASSERT_THAT(writer->Close(), IsOk());
  }
  // Plant half a frame after the whole one: a crash mid-write. The writer's
  // extent is the first of some slot; find the frame by its magic.
  std::string bytes = ReadFileBytes(image_);
  const size_t at = bytes.find("DWFR", geometry_.data_offset());
  ASSERT_NE(at, std::string::npos);
  slot_extent_offset = static_cast<uint32_t>(at);
  std::string torn = bytes.substr(at, 512);
  torn[16] = 0x00;  // position 512 is what a second frame would carry
  torn[17] = 0x02;
  torn[200] ^= 0x55;  // and its records do not check
  bytes.replace(at + 512, 512, torn);
  WriteFileBytes(image_, bytes);

  auto b = Open("b");
  ASSERT_OK_AND_ASSIGN(auto reader, b->OpenReader("c", 0));
  EXPECT_EQ(ReadStream(*reader, 5), "whole");
  ASSERT_OK_AND_ASSIGN(auto writer, a->OpenWriter("c", {}));
  EXPECT_EQ(writer->end_offset(), 5u);
  ASSERT_THAT(writer->Append({DataRecord(5, " and more")}), IsOk());
  EXPECT_EQ(ReadStream(*reader, 9, 5), " and more");
  (void)slot_extent_offset;
}

TEST_F(LunVolumeTest, OneWriterPerChannelAcrossProcesses) {
  auto a = Open("a");
  auto b = Open("b");
  ASSERT_OK_AND_ASSIGN(auto writer, a->OpenWriter("c", {}));
  EXPECT_THAT(b->OpenWriter("c", {}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("already has a writer")));
  EXPECT_THAT(a->OpenWriter("c", {}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(LunVolumeTest, RemovingAChannelEndsItsReaders) {
  auto a = Open("a");
  auto b = Open("b");
  {
    ASSERT_OK_AND_ASSIGN(auto writer, a->OpenWriter("c", {}));
    ASSERT_THAT(writer->Append({DataRecord(0, "x")}), IsOk());
  }
  ASSERT_OK_AND_ASSIGN(auto reader, b->OpenReader("c", 0));
  EXPECT_EQ(ReadStream(*reader, 1), "x");
  EXPECT_THAT(b->RemoveChannel("c"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("only its process")));
  ASSERT_THAT(a->RemoveChannel("c"), IsOk());
  absl::Status end;
  for (int i = 0; i < 300 && end.ok(); ++i) {
    std::vector<Record> got;
    end = reader->ReadAvailable(&got, 1 << 20).status();
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_THAT(end, StatusIs(absl::StatusCode::kNotFound, HasSubstr("removed")));
}

TEST_F(LunVolumeTest, HeartbeatsOfAnySizeUpToTheSlotsRegion) {
  auto a = Open("hosta");
  auto b = Open("hostb");
  const std::string big(12000, 'h');
  ASSERT_THAT(a->PublishHeartbeat("proc-a", "first"), IsOk());
  ASSERT_THAT(a->PublishHeartbeat("proc-a", big), IsOk());
  ASSERT_THAT(b->PublishHeartbeat("proc-b", "bee"), IsOk());
  ASSERT_OK_AND_ASSIGN(HeartbeatListing l, b->ListHeartbeats());
  ASSERT_EQ(l.heartbeats.size(), 2u);
  EXPECT_EQ(l.heartbeats[0].process_id, "proc-a");
  EXPECT_EQ(l.heartbeats[0].node, "hosta");
  EXPECT_EQ(l.heartbeats[0].payload, big);
  EXPECT_EQ(l.heartbeats[0].sequence, 2u);
  EXPECT_EQ(l.heartbeats[1].payload, "bee");
  EXPECT_THAT(a->PublishHeartbeat("proc-a", std::string(20000, 'x')),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("--heartbeat-bytes")));
  ASSERT_THAT(a->RemoveHeartbeat("proc-a"), IsOk());
  ASSERT_OK_AND_ASSIGN(l, b->ListHeartbeats());
  ASSERT_EQ(l.heartbeats.size(), 1u);
  EXPECT_EQ(l.heartbeats[0].process_id, "proc-b");
}

TEST_F(LunVolumeTest, InboxMessagesAreTakenOnceAndTheirCellsReused) {
  auto a = Open("a");
  auto b = Open("b");
  ASSERT_THAT(b->PublishHeartbeat("proc-b", ""), IsOk());
  ASSERT_THAT(a->PostToInbox("proc-b", "m2", "two"), IsOk());
  ASSERT_THAT(a->PostToInbox("proc-b", "m1", "one"), IsOk());
  EXPECT_THAT(a->PostToInbox("proc-b", "m1", "again"),
              StatusIs(absl::StatusCode::kAlreadyExists));
  ASSERT_OK_AND_ASSIGN(InboxListing in, b->TakeInbox("proc-b"));
  ASSERT_EQ(in.messages.size(), 2u);
  EXPECT_EQ(in.messages[0].name, "m1");
  EXPECT_EQ(in.messages[0].payload, "one");
  EXPECT_EQ(in.messages[1].payload, "two");
  ASSERT_OK_AND_ASSIGN(in, b->TakeInbox("proc-b"));
  EXPECT_THAT(in.messages, IsEmpty());
  // Four cells: taken ones are reused, so twenty messages flow.
  for (int i = 0; i < 20; ++i) {
    ASSERT_THAT(a->PostToInbox("proc-b", "n" + std::to_string(i), "p"), IsOk());
    ASSERT_OK_AND_ASSIGN(in, b->TakeInbox("proc-b"));
    ASSERT_EQ(in.messages.size(), 1u) << i;
  }
  // Untaken, they are backpressure, not loss.
  absl::Status st;
  int posted = 0;
  for (; posted < 10 && st.ok(); ++posted) {
    st = a->PostToInbox("proc-b", "q" + std::to_string(posted), "p");
  }
  EXPECT_THAT(
      st, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("outbox")));
  ASSERT_OK_AND_ASSIGN(in, b->TakeInbox("proc-b"));
  EXPECT_EQ(in.messages.size(), 4u);
}

TEST_F(LunVolumeTest, TwoProcessesClaimingOneSlotIsAnError) {
  auto a = Open("a", absl::Milliseconds(400));
  ASSERT_THAT(a->PublishHeartbeat("proc-a", "x"), IsOk());
  // Another process overwrites a's claim (as a host with a wrong clock or a
  // cloned volume would).
  std::string bytes = ReadFileBytes(image_);
  const size_t at = geometry_.claim_offset(0);
  ASSERT_EQ(bytes.substr(at, 4), "DWCL");
  LunClaim intruder;
  intruder.state = LunClaim::kClaimed;
  intruder.nonce = 99;
  intruder.node = "elsewhere";
  intruder.pid = 4242;
  intruder.renewed_ns = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
  bytes.replace(at, kLunBlock, EncodeClaim(intruder));
  WriteFileBytes(image_, bytes);
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_THAT(a->PublishHeartbeat("proc-a", "y"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("slot 0"), HasSubstr("elsewhere"),
                             HasSubstr("two processes claim one slot"))));
}

TEST_F(LunVolumeTest, ReleasedSlotsAreReclaimedAndStaleHeartbeatsIgnored) {
  for (int i = 0; i < 3 * 8; ++i) {
    auto v = Open("n");
    ASSERT_THAT(v->PublishHeartbeat("p" + std::to_string(i), "x"), IsOk()) << i;
  }
  auto b = Open("b");
  ASSERT_OK_AND_ASSIGN(HeartbeatListing l, b->ListHeartbeats());
  EXPECT_THAT(l.heartbeats, IsEmpty());
}

TEST_F(LunVolumeTest, AKilledProcessIsGoneALeaseLater) {
  const absl::Duration lease = absl::Milliseconds(300);
  auto killed = Open("a", lease);
  ASSERT_THAT(killed->PublishHeartbeat("proc-a", "x"), IsOk());
  ASSERT_OK_AND_ASSIGN(auto writer, killed->OpenWriter("c", {}));
  ASSERT_THAT(writer->Append({DataRecord(0, "x")}), IsOk());
  // SIGKILL: no destructor runs, nothing is released.
  (void)writer.release();
  (void)killed.release();
  auto b = Open("b", lease);
  ASSERT_OK_AND_ASSIGN(HeartbeatListing l, b->ListHeartbeats());
  EXPECT_EQ(l.heartbeats.size(), 1u) << "alive for a lease";
  absl::SleepFor(lease + absl::Milliseconds(50));
  ASSERT_OK_AND_ASSIGN(l, b->ListHeartbeats());
  EXPECT_THAT(l.heartbeats, IsEmpty());
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> names, b->ListChannels());
  EXPECT_THAT(names, IsEmpty()) << "nothing left for a prune to remove";
  // And its slot serves again: every slot can be claimed.
  std::vector<std::unique_ptr<Volume>> all;
  for (uint32_t i = 0; i + 1 < geometry_.slots; ++i) {
    all.push_back(Open("n", lease));
    ASSERT_THAT(all.back()->PublishHeartbeat("p" + std::to_string(i), "x"),
                IsOk())
        << i;
  }
}

TEST_F(LunVolumeTest, AForkedChildClaimsItsOwnSlotAndLeavesTheParents) {
  auto v = Open("a");
  ASSERT_THAT(v->PublishHeartbeat("parent", "p"), IsOk());
  const pid_t child = fork();
  if (child == 0) {
    // The child inherits the parent's Volume (and with it the parent's slot).
    const bool ok = v->PublishHeartbeat("child", "c").ok() &&
                    v->OpenWriter("from-child", {}).ok();
    v.reset();  // exits: releases what it claimed, and only that
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  auto b = Open("b");
  ASSERT_OK_AND_ASSIGN(HeartbeatListing l, b->ListHeartbeats());
  ASSERT_EQ(l.heartbeats.size(), 1u);
  EXPECT_EQ(l.heartbeats[0].process_id, "parent")
      << "the child released its parent's slot";
  EXPECT_THAT(v->PublishHeartbeat("parent", "p2"), IsOk());
}

TEST_F(LunVolumeTest, ARestartUnderItsSlotIdTakesItsChannelsAndMessagesBack) {
  LunVolumeOptions o;
  o.node = "a";
  o.slot_id = "mirror.m";
  // The first life writes, posts, and is killed: nothing is released.
  const pid_t child = fork();
  if (child == 0) {
    absl::StatusOr<std::unique_ptr<Volume>> v = OpenLunVolume(image_, o);
    if (v.ok()) {
      absl::StatusOr<std::unique_ptr<ChannelWriter>> w =
          (*v)->OpenWriter("c", {});
      if (w.ok() && (*w)->Append({DataRecord(0, "first ")}).ok() &&
          (*v)->PostToInbox("dst.1", "m1", "one").ok()) {
        kill(getpid(), SIGKILL);
      }
    }
    _exit(1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child failed before its kill";
  auto b = Open("b");
  ASSERT_OK_AND_ASSIGN(auto reader, b->OpenReader("c", 0));
  EXPECT_EQ(ReadStream(*reader, 6), "first ");

  // The second life, at once (its predecessor died on this host), goes on
  // where the first stopped: same channel, same reader, no lease to wait.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Volume> again, OpenLunVolume(image_, o));
  ASSERT_OK_AND_ASSIGN(auto writer, again->OpenWriter("c", {}));
  ASSERT_TRUE(writer->last_record()) << "the channel was taken back";
  EXPECT_EQ(writer->end_offset(), 6u);
  ASSERT_THAT(writer->Append({DataRecord(6, "second")}), IsOk());
  EXPECT_EQ(ReadStream(*reader, 6, 6), "second");
  ASSERT_THAT(again->PostToInbox("dst.1", "m2", "two"), IsOk());
  ASSERT_OK_AND_ASSIGN(InboxListing got, b->TakeInbox("dst.1"));
  ASSERT_EQ(got.messages.size(), 2u) << "the first life's message is kept";
  EXPECT_EQ(got.messages[0].name, "m1");
  EXPECT_EQ(got.messages[1].name, "m2");
  ASSERT_THAT(again->PostToInbox("dst.1", "m3", "three"), IsOk());
  ASSERT_OK_AND_ASSIGN(got, b->TakeInbox("dst.1"));
  ASSERT_EQ(got.messages.size(), 1u) << "nothing is delivered twice";
  EXPECT_EQ(got.messages[0].name, "m3");
  // A second process under the same id while the first lives is not
  // handed its slot.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Volume> twin, OpenLunVolume(image_, o));
  EXPECT_THAT(twin->OpenWriter("c", {}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("already has a writer")));
}

TEST_F(LunVolumeTest, OpenVolumePicksTheBackendByPath) {
  ASSERT_OK_AND_ASSIGN(auto lun, OpenVolume(image_, {}));
  ASSERT_THAT(lun->PublishHeartbeat("p", "x"), IsOk());
  EXPECT_NE(ReadFileBytes(image_).find("DWHB"), std::string::npos);
  const std::string dir = dir_.path() + "/dirvol";
  ASSERT_OK_AND_ASSIGN(auto dv, OpenVolume(dir, {}));
  EXPECT_TRUE(std::filesystem::is_directory(dir));
  EXPECT_THAT(CheckVolume(image_), IsOk());
}

TEST_F(LunVolumeTest, AWatcherTicksAtItsPollInterval) {
  auto a = Open("a");
  WatcherOptions o;
  o.poll_interval = absl::Milliseconds(5);
  ASSERT_OK_AND_ASSIGN(auto w, a->NewWatcher(o));
  absl::SleepFor(absl::Milliseconds(20));
  VolumeWatcher::Changes c;
  ASSERT_THAT(w->Drain(&c), IsOk());
  EXPECT_TRUE(c.everything);
  o.mode = WatcherOptions::Mode::kInotify;
  EXPECT_THAT(a->NewWatcher(o), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace diskwire::storage
