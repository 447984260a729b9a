// File: shim/self_text_test.cc
// Linked into a test executable, "self" is the executable's own code.

#include "shim/self_text.h"

#include <string.h>

#include "gtest/gtest.h"

namespace diskwire::shim {
namespace {

int LocalFunction() { return 42; }

TEST(SelfText, EmptyBeforeInit) {
  // Runs first in this binary (gtest keeps declaration order).
  EXPECT_FALSE(InDiskwireText(reinterpret_cast<const void*>(&LocalFunction)));
}

TEST(SelfText, ContainsOwnCodeOnly) {
  InitSelfText();
  EXPECT_TRUE(InDiskwireText(reinterpret_cast<const void*>(&LocalFunction)));
  EXPECT_TRUE(InDiskwireText(reinterpret_cast<const void*>(&InitSelfText)));
  // libc's code and this object's data are elsewhere.
  EXPECT_FALSE(InDiskwireText(reinterpret_cast<const void*>(&strlen)));
  static int data = 0;
  EXPECT_FALSE(InDiskwireText(&data));
  EXPECT_FALSE(InDiskwireText(nullptr));
  EXPECT_NE(SelfBase(), 0u);
}

TEST(SelfText, InitIsIdempotent) {
  InitSelfText();
  const uintptr_t base = SelfBase();
  InitSelfText();
  EXPECT_EQ(SelfBase(), base);
  EXPECT_EQ(LocalFunction(), 42);
}

}  // namespace
}  // namespace diskwire::shim
