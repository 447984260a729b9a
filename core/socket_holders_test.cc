#include "core/socket_holders.h"

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace diskwire {
namespace {

TEST(OtherProcessHolds, SeesAForkedChildsCopyAndItsClose) {
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  auto held = OtherProcessHolds(pair[0]);
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_FALSE(*held) << "only this process holds a fresh socket";

  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // holds pair[0] until told to go
    close(go[1]);
    char c;
    (void)!read(go[0], &c, 1);
    _exit(0);
  }
  close(go[0]);
  held = OtherProcessHolds(pair[0]);
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_TRUE(*held) << "the child inherited the socket";
  // The other end is held by the child too (inherited), but a socket that
  // only this process opened after the fork is not.
  int later[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, later), 0);
  held = OtherProcessHolds(later[0]);
  ASSERT_TRUE(held.ok());
  EXPECT_FALSE(*held);

  close(go[1]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  held = OtherProcessHolds(pair[0]);
  ASSERT_TRUE(held.ok());
  EXPECT_FALSE(*held) << "the child is gone";
  for (int fd : {pair[0], pair[1], later[0], later[1]}) close(fd);
}

TEST(OtherProcessHolds, ABadDescriptorIsAnError) {
  EXPECT_FALSE(OtherProcessHolds(-1).ok());
}

}  // namespace
}  // namespace diskwire
