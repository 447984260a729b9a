// File: shim/testing/preload_fixture.h
// Test fixture for running shim/testing/shim_probe (or any program) with a
// chosen environment, capturing its output: the preload tests' common part.

#ifndef DISKWIRE_SHIM_TESTING_PRELOAD_FIXTURE_H_
#define DISKWIRE_SHIM_TESTING_PRELOAD_FIXTURE_H_

#include <dirent.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "gtest/gtest.h"

namespace diskwire::testing_shim {

struct Result {
  int status = -1;
  std::string out;
  std::string err;
};

inline std::string Runfile(const std::string& name) {
  const char* srcdir = getenv("TEST_SRCDIR");
  return std::string(srcdir ? srcdir : ".") + "/diskwire/shim/" + name;
}

class PreloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/dw_volume_XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    volume_ = dir;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(volume_, ignored);
  }

  // Runs the probe in `mode` with exactly `env` (plus PATH), capturing output.
  Result Probe(const std::string& mode, std::vector<std::string> env) {
    env.push_back("PATH=/usr/bin:/bin");
    const std::string probe = Runfile("shim_probe");
    return Run({probe, mode}, env);
  }
  std::string Real() { return "LD_PRELOAD=" + Runfile("libdiskwire.so"); }
  std::string Fake() { return "LD_PRELOAD=" + Runfile("libdiskwire_fake.so"); }
  std::string Volume() { return "DISKWIRE_VOLUME=" + volume_; }

  static Result Run(const std::vector<std::string>& args,
                    const std::vector<std::string>& env) {
    int out[2], err[2];
    if (pipe(out) != 0 || pipe(err) != 0) return {};
    std::vector<char*> argv, envp;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    argv.push_back(nullptr);
    envp.push_back(nullptr);
    const pid_t pid = fork();
    if (pid == 0) {
      dup2(out[1], 1);
      dup2(err[1], 2);
      close(out[0]);
      close(err[0]);
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    close(out[1]);
    close(err[1]);
    Result r;
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    std::string* sinks[2] = {&r.out, &r.err};
    int open_count = 2;
    while (open_count > 0 && poll(fds, 2, 30000) > 0) {
      for (int i = 0; i < 2; ++i) {
        if (fds[i].revents == 0) continue;
        char buf[4096];
        const ssize_t n = read(fds[i].fd, buf, sizeof(buf));
        if (n <= 0) {
          close(fds[i].fd);
          fds[i].fd = -1;
          --open_count;
        } else {
          sinks[i]->append(buf, n);
        }
      }
    }
    waitpid(pid, &r.status, 0);
    return r;
  }

  bool VolumeIsEmpty() {
    DIR* d = opendir(volume_.c_str());
    if (d == nullptr) return false;
    int entries = 0;
    while (readdir(d) != nullptr) ++entries;
    closedir(d);
    return entries == 2;  // "." and "..".
  }

  std::string volume_;
};

inline bool Exited(const Result& r, int code) {
  return WIFEXITED(r.status) && WEXITSTATUS(r.status) == code;
}

}  // namespace diskwire::testing_shim

#endif  // DISKWIRE_SHIM_TESTING_PRELOAD_FIXTURE_H_
