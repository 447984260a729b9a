#include "cli/elf_check.h"

#include <elf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_matchers.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Test programs built by cli/BUILD.bazel, relative to the runfiles root.
constexpr char kStatic[] = "cli/testdata/static_hello";
constexpr char kDynamic[] = "cli/testdata/dynamic_hello";

class ElfCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/elf_check_", getpid());
    mkdir(dir_.c_str(), 0700);
  }

  // Writes `contents` to a new file in the test directory.
  std::string Write(const std::string& name, const std::string& contents,
                    mode_t mode = 0755) const {
    std::string path = absl::StrCat(dir_, "/", name);
    std::ofstream(path, std::ios::binary) << contents;
    chmod(path.c_str(), mode);
    return path;
  }

  // The first `n` bytes of `path`.
  static std::string Head(const std::string& path, size_t n) {
    std::ifstream in(path, std::ios::binary);
    std::string bytes(n, '\0');
    in.read(bytes.data(), static_cast<std::streamsize>(n));
    bytes.resize(static_cast<size_t>(in.gcount()));
    return bytes;
  }

  std::string dir_;
};

TEST_F(ElfCheckTest, DynamicAndStaticPrograms) {
  EXPECT_EQ(InspectElf(kDynamic).value(), ElfKind::kDynamic);
  EXPECT_EQ(InspectElf(kStatic).value(), ElfKind::kStatic);
  EXPECT_EQ(InspectElf("/bin/sh").value(), ElfKind::kDynamic);
}

TEST_F(ElfCheckTest, NonElfFilesAndScripts) {
  EXPECT_EQ(InspectElf(Write("text", "just text")).value(), ElfKind::kNotElf);
  EXPECT_EQ(InspectElf(Write("empty", "")).value(), ElfKind::kNotElf);
  EXPECT_THAT(InspectElf(absl::StrCat(dir_, "/absent")),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ElfCheckTest, ForeignClassOrMachine) {
  std::string elf = Head(kDynamic, sizeof(Elf64_Ehdr));
  std::string other_class = elf;
  other_class[EI_CLASS] = ELFCLASS32;
  EXPECT_EQ(InspectElf(Write("class32", other_class)).value(),
            ElfKind::kOtherMachine);
  std::string other_machine = elf;
  uint16_t arm = EM_ARM;
  other_machine.replace(offsetof(Elf64_Ehdr, e_machine), 2,
                        reinterpret_cast<const char*>(&arm), 2);
  EXPECT_EQ(InspectElf(Write("arm", other_machine)).value(),
            ElfKind::kOtherMachine);
}

// A copy of the dynamic test program whose first note is rewritten into the
// Go toolchain's build-id note ("Go\0\0", type 4), as `go build` emits it.
TEST_F(ElfCheckTest, GoProgramsAreRecognisedByTheirNote) {
  std::string elf = Head(kDynamic, 1 << 24);
  Elf64_Ehdr eh;
  std::memcpy(&eh, elf.data(), sizeof(eh));
  bool patched = false;
  for (int i = 0; i < eh.e_phnum && !patched; ++i) {
    Elf64_Phdr ph;
    std::memcpy(&ph, elf.data() + eh.e_phoff + i * sizeof(ph), sizeof(ph));
    if (ph.p_type != PT_NOTE) continue;
    uint32_t namesz = 4, type = 4;
    elf.replace(ph.p_offset, 4, reinterpret_cast<const char*>(&namesz), 4);
    elf.replace(ph.p_offset + 8, 4, reinterpret_cast<const char*>(&type), 4);
    elf.replace(ph.p_offset + 12, 4, std::string("Go\0\0", 4));
    patched = true;
  }
  ASSERT_TRUE(patched) << "the test program has no PT_NOTE";
  std::string go = Write("go_program", elf);
  EXPECT_EQ(InspectElf(go).value(), ElfKind::kGo);
  EXPECT_THAT(PreloadWarnings(go),
              ElementsAre(absl::StrCat(go,
                                       " is a Go program: Go makes its socket "
                                       "calls without libc, so diskwire will "
                                       "not carry its connections")));
}

TEST_F(ElfCheckTest, TruncatedOrCorruptHeadersAreErrorsNotCrashes) {
  EXPECT_THAT(
      InspectElf(Write("short", Head(kDynamic, 40))),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("truncated ELF header")));
  // The header promises program headers past the end of the file.
  EXPECT_THAT(InspectElf(Write("nophdrs", Head(kDynamic, sizeof(Elf64_Ehdr)))),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("truncated program header table")));
  std::string bad_size = Head(kDynamic, 4096);
  uint16_t phentsize = 7;
  bad_size.replace(offsetof(Elf64_Ehdr, e_phentsize), 2,
                   reinterpret_cast<const char*>(&phentsize), 2);
  EXPECT_THAT(InspectElf(Write("badsize", bad_size)),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("inconsistent program header table")));
}

TEST_F(ElfCheckTest, SecureExecutionRules) {
  struct stat st {};
  st.st_uid = 0;
  st.st_gid = 0;
  st.st_mode = S_IFREG | 0755;
  EXPECT_FALSE(SecureExecution(st, 1000, 1000, false));
  st.st_mode = S_IFREG | S_ISUID | 0755;
  EXPECT_TRUE(SecureExecution(st, 1000, 1000, false));  // sudo, ping...
  EXPECT_FALSE(SecureExecution(st, 0, 0, false));       // Owner runs it.
  st.st_mode = S_IFREG | S_ISGID | 0755;
  EXPECT_TRUE(SecureExecution(st, 0, 1000, false));
  st.st_mode = S_IFREG | 0755;
  EXPECT_TRUE(SecureExecution(st, 1000, 1000, true));  // File capabilities.
}

TEST_F(ElfCheckTest, WarningsNameTheFile) {
  EXPECT_THAT(PreloadWarnings(kDynamic), IsEmpty());
  EXPECT_THAT(PreloadWarnings(kStatic),
              ElementsAre(absl::StrCat(kStatic,
                                       " is statically linked: LD_PRELOAD has "
                                       "no effect on it, so diskwire will not "
                                       "carry its connections")));
  EXPECT_THAT(PreloadWarnings(absl::StrCat(dir_, "/absent")), IsEmpty());
  EXPECT_THAT(PreloadWarnings(Write("data", "plain data")), IsEmpty());
}

TEST_F(ElfCheckTest, ScriptsAreJudgedByTheirInterpreter) {
  char cwd[4096];
  ASSERT_NE(getcwd(cwd, sizeof(cwd)), nullptr);
  std::string static_abs = absl::StrCat(cwd, "/", kStatic);
  EXPECT_THAT(PreloadWarnings(Write("ok.sh", "#!/bin/sh\necho hi\n")),
              IsEmpty());
  std::string script = Write("static.sh", "#! " + static_abs + " -x\n");
  EXPECT_THAT(PreloadWarnings(script),
              ElementsAre(HasSubstr(static_abs + " is statically linked")));
  // A chain of scripts ending at the static program.
  std::string outer = Write("outer.sh", "#!" + script + "\n");
  EXPECT_THAT(PreloadWarnings(outer),
              ElementsAre(HasSubstr("is statically linked")));
  // A script that names itself stops after a few levels.
  std::string loop = absl::StrCat(dir_, "/loop.sh");
  Write("loop.sh", "#!" + loop + "\n");
  EXPECT_THAT(PreloadWarnings(loop), IsEmpty());
}

TEST_F(ElfCheckTest, SetuidProgramOfAnotherUserWarns) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  std::string copy = Write("setuid_copy", Head(kDynamic, 1 << 24));
  if (chown(copy.c_str(), 65534, 65534) != 0) {
    GTEST_SKIP() << "cannot chown to another user here: " << strerror(errno);
  }
  ASSERT_EQ(chmod(copy.c_str(), 04755), 0);
  EXPECT_THAT(PreloadWarnings(copy),
              ElementsAre(absl::StrCat(
                  copy,
                  " runs setuid, setgid or with file capabilities: the loader "
                  "ignores LD_PRELOAD for it, so diskwire will not carry its "
                  "connections")));
}

}  // namespace
}  // namespace diskwire
