#include "core/session_table.h"

#include <memory>

#include "core/clock.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

class SessionTableTest : public ::testing::Test {
 protected:
  std::shared_ptr<Session> NewSession(uint64_t low, Role role = Role::kClient) {
    auto s = std::make_shared<Session>(RealClock::Get(), 1000, 1 << 20);
    s->id = {7, low};
    s->role = role;
    return s;
  }

  std::atomic<uint8_t> owned_[SessionTable::kMaxFds] = {};
  SessionTable table_{owned_};
};

TEST_F(SessionTableTest, AnFdNamesItsSessionAndCarriesItsOwnedFlag) {
  auto s = NewSession(1);
  absl::MutexLock lock(&table_.mu);
  table_.Put(s);
  table_.AddName(5, s.get());
  EXPECT_EQ(table_.At(5), s.get());
  EXPECT_EQ(owned_[5].load(), SessionTable::kOwned);
  EXPECT_EQ(table_.At(6), nullptr);
  EXPECT_EQ(table_.At(-1), nullptr);
  EXPECT_EQ(table_.At(SessionTable::kMaxFds), nullptr);

  s->dormant.store(true);
  {
    absl::MutexLock slock(&s->mu);
    table_.RefreshFlags(s.get());
  }
  EXPECT_EQ(owned_[5].load(), SessionTable::kOwnedDormant);
}

TEST_F(SessionTableTest, DupAddsANameAndReplacesWhatTheTargetNamed) {
  auto a = NewSession(1);
  auto b = NewSession(2);
  absl::MutexLock lock(&table_.mu);
  table_.Put(a);
  table_.Put(b);
  table_.AddName(3, a.get());
  table_.AddName(4, b.get());
  epoll_event ev = {};
  ev.events = EPOLLIN;
  table_.OnEpollCtl(/*epfd=*/9, EPOLL_CTL_ADD, 4, &ev);

  EXPECT_EQ(table_.Dup(3, 4), a.get());  // dup2(3, 4) closes b's name 4
  EXPECT_EQ(table_.At(4), a.get());
  EXPECT_EQ(table_.EpollRegistrations(4), nullptr);  // the kernel drops it
  {
    absl::MutexLock slock(&a->mu);
    EXPECT_EQ(a->names, (std::vector<int>{3, 4}));
  }
  {
    absl::MutexLock slock(&b->mu);
    EXPECT_TRUE(b->names.empty());
  }
  // Duplicating an fd of no session onto one of ours: that name is gone.
  EXPECT_EQ(table_.Dup(20, 3), nullptr);
  EXPECT_EQ(table_.At(3), nullptr);
  EXPECT_EQ(owned_[3].load(), 0);
  absl::MutexLock slock(&a->mu);
  EXPECT_EQ(a->names, (std::vector<int>{4}));
}

TEST_F(SessionTableTest, UnnameTellsWhenTheLastNameWent) {
  auto s = NewSession(1);
  absl::MutexLock lock(&table_.mu);
  table_.Put(s);
  table_.AddName(3, s.get());
  table_.Dup(3, 8);

  SessionTable::Unnamed first = table_.Unname(3);
  EXPECT_EQ(first.session, s.get());
  EXPECT_FALSE(first.last);
  EXPECT_EQ(table_.At(3), nullptr);
  EXPECT_EQ(owned_[3].load(), 0);

  SessionTable::Unnamed second = table_.Unname(8);
  EXPECT_EQ(second.session, s.get());
  EXPECT_TRUE(second.last);

  EXPECT_EQ(table_.Unname(8).session, nullptr);  // closed twice: not ours
}

TEST_F(SessionTableTest, ClosingAnEpollSetForgetsTheRegistrationsInIt) {
  absl::MutexLock lock(&table_.mu);
  epoll_event ev = {};
  ev.data.u64 = 42;
  table_.OnEpollCtl(/*epfd=*/10, EPOLL_CTL_ADD, 4, &ev);
  table_.OnEpollCtl(/*epfd=*/11, EPOLL_CTL_ADD, 4, &ev);
  EXPECT_EQ(table_.FdRegisteredWith(10, 42), 4);
  EXPECT_EQ(table_.FdRegisteredWith(10, 43), -1);

  table_.Unname(10);
  EXPECT_EQ(table_.FdRegisteredWith(10, 42), -1);
  ASSERT_NE(table_.EpollRegistrations(4), nullptr);
  EXPECT_EQ(table_.EpollRegistrations(4)->count(11), 1u);

  table_.OnEpollCtl(11, EPOLL_CTL_DEL, 4, nullptr);
  EXPECT_EQ(table_.FdRegisteredWith(11, 42), -1);
}

TEST_F(SessionTableTest, ASessionReplacedUnderItsKeyIsNotFoundAsItself) {
  auto old = NewSession(1);
  auto newer = NewSession(1);
  auto other_role = NewSession(1, Role::kServer);
  absl::MutexLock lock(&table_.mu);
  EXPECT_EQ(table_.Put(old), nullptr);
  EXPECT_EQ(table_.Put(other_role), nullptr);  // both ends in one process
  EXPECT_EQ(table_.Put(newer), old);
  EXPECT_EQ(table_.Find(old.get()), nullptr);
  EXPECT_EQ(table_.Find(newer.get()), newer);
  EXPECT_EQ(table_.Find(KeyOf(old->id, Role::kServer)), other_role);
  EXPECT_FALSE(table_.Bury(old.get(), 0)) << "not the session under its key";
  EXPECT_EQ(table_.size(), 2u);
}

TEST_F(SessionTableTest, TheGraveyardKeepsASessionForTheGraceThenFreesIt) {
  auto s = NewSession(1);
  std::weak_ptr<Session> watch = s;
  absl::MutexLock lock(&table_.mu);
  table_.Put(std::move(s));
  ASSERT_TRUE(table_.Bury(watch.lock().get(), /*now=*/100));
  EXPECT_EQ(table_.size(), 0u);

  std::vector<std::shared_ptr<Session>> unreleased;
  EXPECT_FALSE(
      table_.SweepGraveyard(/*now=*/150, /*grace_ns=*/100, &unreleased));
  ASSERT_EQ(unreleased.size(), 1u) << "its buffers go at the first sweep";
  unreleased.clear();
  EXPECT_FALSE(table_.SweepGraveyard(160, 100, &unreleased));
  EXPECT_TRUE(unreleased.empty()) << "and only once";
  EXPECT_FALSE(watch.expired()) << "a hook may still hold it in the grace";

  EXPECT_TRUE(table_.SweepGraveyard(201, 100, &unreleased));
  EXPECT_TRUE(watch.expired());
}

TEST_F(SessionTableTest, AConnectingSessionIsTakenOnce) {
  auto s = NewSession(1);
  absl::MutexLock lock(&table_.mu);
  table_.AddConnecting(s);
  EXPECT_EQ(table_.connecting().size(), 1u);
  EXPECT_EQ(table_.TakeConnecting(s.get()), s);
  EXPECT_EQ(table_.TakeConnecting(s.get()), nullptr);
  EXPECT_TRUE(table_.connecting().empty());
}

TEST_F(SessionTableTest, AConnectingSessionIsBuriedOnceAndKeptThroughTheGrace) {
  // A connect that opens over the volume leaves its session to hooks that may
  // still hold it: buried, not freed, and by one thread only.
  std::weak_ptr<Session> watch;
  {
    auto s = NewSession(1);
    watch = s;
    absl::MutexLock lock(&table_.mu);
    table_.AddConnecting(std::move(s));
    EXPECT_TRUE(table_.BuryConnecting(watch.lock().get(), 100));
    EXPECT_FALSE(table_.BuryConnecting(watch.lock().get(), 100));
    EXPECT_TRUE(table_.connecting().empty());
    EXPECT_EQ(table_.buried(), 1u);
  }
  EXPECT_FALSE(watch.expired());
  std::vector<std::shared_ptr<Session>> unreleased;
  absl::MutexLock lock(&table_.mu);
  EXPECT_TRUE(table_.SweepGraveyard(200, 50, &unreleased));
  unreleased.clear();
  EXPECT_TRUE(watch.expired());
}

TEST_F(SessionTableTest, AForkedChildStartsWithAnEmptyTable) {
  auto s = NewSession(1);
  absl::MutexLock lock(&table_.mu);
  table_.Put(s);
  table_.AddName(3, s.get());
  table_.AddConnecting(NewSession(2));
  epoll_event ev = {};
  table_.OnEpollCtl(10, EPOLL_CTL_ADD, 3, &ev);

  table_.ClearAfterFork();
  EXPECT_EQ(table_.At(3), nullptr);
  EXPECT_EQ(owned_[3].load(), 0);
  EXPECT_EQ(table_.size(), 0u);
  EXPECT_TRUE(table_.connecting().empty());
  EXPECT_EQ(table_.EpollRegistrations(3), nullptr);
}

TEST_F(SessionTableTest, UnnameAllForgetsTheSessionAndEveryName) {
  auto s = NewSession(1);
  absl::MutexLock lock(&table_.mu);
  table_.Put(s);
  table_.AddName(3, s.get());
  table_.AddName(4, s.get());
  table_.UnnameAll(s.get(), 0);
  EXPECT_EQ(table_.At(3), nullptr);
  EXPECT_EQ(table_.At(4), nullptr);
  EXPECT_EQ(table_.Find(s.get()), nullptr);
  EXPECT_EQ(table_.buried(), 1u);
}

}  // namespace
}  // namespace diskwire
