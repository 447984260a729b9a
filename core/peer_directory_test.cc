#include "core/peer_directory.h"

#include <time.h>

#include "base/status_matchers.h"
#include "core/fake_clock.h"
#include "gtest/gtest.h"
#include "storage/dir_volume.h"
#include "storage/test_util.h"

namespace diskwire {
namespace {

constexpr int64_t kTimeoutMs = 3000;

int64_t RealNowNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * kNsPerSec + ts.tv_nsec;
}

sockaddr_storage Address(const char* text) {
  absl::StatusOr<sockaddr_storage> address = ParseAddress(text);
  EXPECT_THAT(address, IsOk());
  return address.ok() ? *address : sockaddr_storage{};
}

SessionReport Holding(const SessionId& id, Role role, const char* state,
                      int64_t claim_ns) {
  SessionReport r;
  r.id = id;
  r.role = role;
  r.state = state;
  r.claim_ns = claim_ns;
  return r;
}

class PeerDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The volume stamps heartbeats with the real wall clock.
    clock_.SetRealtimeNs(RealNowNs());
    ASSERT_OK_AND_ASSIGN(volume_, storage::OpenDirVolume(dir_.path(), {}));
    directory_ =
        std::make_unique<PeerDirectory>(volume_.get(), &clock_, kTimeoutMs);
  }
  void Publish(const std::string& process, const ProcessReport& report) {
    ASSERT_THAT(volume_->PublishHeartbeat(process, EncodeProcessReport(report)),
                IsOk());
  }
  std::shared_ptr<const PeerSnapshot> Refresh() {
    auto snapshot = directory_->Refresh();
    EXPECT_THAT(snapshot.status(), IsOk());
    return snapshot.ok() ? *snapshot : nullptr;
  }

  storage::ScratchDir dir_;
  std::unique_ptr<storage::Volume> volume_;
  FakeClock clock_{/*start_ns=*/kNsPerSec};
  std::unique_ptr<PeerDirectory> directory_;
};

TEST_F(PeerDirectoryTest, AProcessIsAliveWhileItsHeartbeatMoves) {
  Publish("b.1.1", {});
  auto first = Refresh();
  ASSERT_NE(first->Find("b.1.1"), nullptr);
  EXPECT_TRUE(first->Find("b.1.1")->alive);
  EXPECT_EQ(first->Find("c.1.1"), nullptr);

  clock_.AdvanceMs(kTimeoutMs - 500);
  Publish("b.1.1", {});
  clock_.AdvanceMs(1000);  // past the first beat's timeout, not the second's
  EXPECT_TRUE(Refresh()->Find("b.1.1")->alive);

  clock_.AdvanceMs(kTimeoutMs);  // the same beat read again proves nothing
  auto late = Refresh();
  EXPECT_FALSE(late->Find("b.1.1")->alive);
  EXPECT_EQ(late->Find("b.1.1")->last_alive_ns,
            kNsPerSec + (kTimeoutMs - 500) * kNsPerMs + 1000 * kNsPerMs);
}

// One read may miss a heartbeat (on a LUN, both copies unreadable while one
// is rewritten): its process is not forgotten for that, until it would be
// stale anyway.
TEST_F(PeerDirectoryTest, AProcessMissingFromOneReadIsRememberedUntilStale) {
  Publish("b.1.1", {});
  const int64_t seen = Refresh()->Find("b.1.1")->last_alive_ns;
  ASSERT_THAT(volume_->RemoveHeartbeat("b.1.1"), IsOk());
  clock_.AdvanceMs(kTimeoutMs / 2);
  auto missed = Refresh();
  EXPECT_EQ(missed->Find("b.1.1"), nullptr);
  EXPECT_EQ(missed->LastAliveNs("b.1.1"), seen);
  EXPECT_EQ(missed->LastAliveNs("c.1.1"), std::nullopt);
  clock_.AdvanceMs(kTimeoutMs);
  EXPECT_EQ(Refresh()->LastAliveNs("b.1.1"), std::nullopt);
}

// A heartbeat left by a process long gone is dead at first sight: it is aged
// by its own time.
TEST_F(PeerDirectoryTest, AnOldHeartbeatSeenForTheFirstTimeIsDead) {
  Publish("b.1.1", {});
  clock_.SetRealtimeNs(clock_.RealtimeNs() + 10 * kTimeoutMs * kNsPerMs);
  EXPECT_FALSE(Refresh()->Find("b.1.1")->alive);
}

TEST_F(PeerDirectoryTest, TheHolderStillCarryingTheSessionWins) {
  const SessionId id{7, 9};
  ProcessReport parent;
  parent.sessions = {Holding(id, Role::kServer, "CLOSED", 500)};
  ProcessReport child;
  child.sessions = {Holding(id, Role::kServer, "STORAGE", 100),
                    Holding(SessionId{1, 2}, Role::kServer, "DIRECT", 900)};
  ProcessReport client;
  client.sessions = {Holding(id, Role::kClient, "STORAGE", 999)};
  Publish("b.1.1", parent);
  Publish("b.2.1", child);
  Publish("a.3.1", client);
  auto snapshot = Refresh();
  EXPECT_EQ(snapshot->ListedSessions(), 4u);

  auto holder = snapshot->HolderOf(id, Role::kServer, /*closed_too=*/false);
  ASSERT_TRUE(holder.has_value());
  EXPECT_EQ(holder->process->id, "b.2.1");  // open beats a newer claim
  EXPECT_EQ(holder->claim_ns, 100);
  EXPECT_FALSE(snapshot->HolderOf(SessionId{1, 2}, Role::kClient, true));
  EXPECT_FALSE(snapshot->HolderOf(SessionId{8, 9}, Role::kServer, true));
}

TEST_F(PeerDirectoryTest, AClosedEndCountsOnlyWhenAsked) {
  const SessionId id{7, 9};
  ProcessReport older;
  older.sessions = {Holding(id, Role::kServer, "CLOSED", 100)};
  ProcessReport newer;
  newer.sessions = {Holding(id, Role::kServer, "CLOSED", 200)};
  Publish("b.1.1", older);
  Publish("b.2.1", newer);
  auto snapshot = Refresh();
  EXPECT_FALSE(snapshot->HolderOf(id, Role::kServer, /*closed_too=*/false));
  auto holder = snapshot->HolderOf(id, Role::kServer, /*closed_too=*/true);
  ASSERT_TRUE(holder.has_value());
  EXPECT_EQ(holder->process->id, "b.2.1");  // the newer claim
}

TEST_F(PeerDirectoryTest, ALiveListenerWinsOverADeadOnesFresherBeat) {
  ProcessReport listening;
  listening.listeners = {"0.0.0.0:5001"};
  listening.addresses = "10.0.0.2";
  Publish("b.1.1", listening);
  ASSERT_TRUE(Refresh()->Find("b.1.1")->alive);
  clock_.AdvanceMs(kTimeoutMs + 1);  // b.1.1 is silent from now on
  Publish("b.2.1", listening);
  auto snapshot = Refresh();
  EXPECT_FALSE(snapshot->Find("b.1.1")->alive);
  const PeerProcess* listener = snapshot->ListenerFor(Address("10.0.0.2:5001"));
  ASSERT_NE(listener, nullptr);
  EXPECT_EQ(listener->id, "b.2.1");
  EXPECT_EQ(snapshot->ListenerFor(Address("10.0.0.2:5002")), nullptr);
  EXPECT_EQ(snapshot->ListenerFor(Address("10.0.0.3:5001")), nullptr);
}

TEST_F(PeerDirectoryTest, AMalformedReportIsAProblemAndItsProcessStays) {
  ASSERT_THAT(volume_->PublishHeartbeat("b.1.1", "session zzz\n"), IsOk());
  Publish("b.2.1", {});
  auto snapshot = Refresh();
  ASSERT_NE(snapshot->Find("b.1.1"), nullptr);
  EXPECT_FALSE(snapshot->Find("b.1.1")->report.has_value());
  EXPECT_TRUE(snapshot->Find("b.1.1")->alive);
  EXPECT_TRUE(snapshot->Find("b.2.1")->report.has_value());
  ASSERT_EQ(snapshot->problems().size(), 1u);
  EXPECT_NE(snapshot->problems()[0].find("heartbeat of b.1.1"),
            std::string::npos);
}

}  // namespace
}  // namespace diskwire
