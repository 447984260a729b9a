#include "core/config.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_matchers.h"
#include "core/config_values.h"
#include "gtest/gtest.h"

namespace diskwire {
namespace {

using Vars = std::map<std::string, std::string>;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ =
        absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/config_test_", getpid());
    mkdir(dir_.c_str(), 0700);
    volume_ = Path("vol");
    mkdir(volume_.c_str(), 0700);
  }

  std::string Path(const std::string& name) const {
    return absl::StrCat(dir_, "/", name);
  }

  // Writes a file of `bytes` bytes and returns its path.
  std::string WriteFile(const std::string& name, size_t bytes) const {
    std::string path = Path(name);
    std::ofstream(path, std::ios::binary) << std::string(bytes, 'k');
    return path;
  }

  // The minimal valid environment, with `extra` added (an empty value in
  // `extra` removes the variable).
  Vars Minimal(const Vars& extra = {}) const {
    Vars v = {{"DISKWIRE_VOLUME", volume_},
              {"DISKWIRE_SELECT", "7000"},
              {"DISKWIRE_NODE", "node-a"}};
    for (const auto& [name, value] : extra) {
      if (value.empty()) {
        v.erase(name);
      } else {
        v[name] = value;
      }
    }
    return v;
  }

  static absl::StatusOr<Config> Parse(const Vars& vars) {
    return Config::FromEnvironment(EnvLookup(vars));
  }

  // The error message of parsing Minimal(extra); "" when it parses.
  std::string Error(const Vars& extra) const {
    absl::StatusOr<Config> c = Parse(Minimal(extra));
    return c.ok() ? "" : std::string(c.status().message());
  }

  std::string dir_;
  std::string volume_;
};

TEST_F(ConfigTest, PresentWhenAnyDiskwireVariableIsSet) {
  EXPECT_FALSE(Config::Present(EnvLookup(Vars{})));
  EXPECT_FALSE(Config::Present(EnvLookup(Vars{{"PATH", "/bin"}})));
  EXPECT_FALSE(Config::Present(EnvLookup(Vars{{"DISKWIREX", "1"}})));
  EXPECT_TRUE(Config::Present(EnvLookup(Vars{{"DISKWIRE_LOG", "off"}})));
}

TEST_F(ConfigTest, FromEnvironKeepsOnlyDiskwireVariablesFirstWins) {
  const char* envp[] = {"PATH=/bin", "DISKWIRE_NODE=a=b", "DISKWIRE_NODE=c",
                        "DISKWIRE_BROKEN", nullptr};
  EnvLookup env = EnvLookup::FromEnviron(envp);
  EXPECT_EQ(env.vars(), (Vars{{"DISKWIRE_NODE", "a=b"}}));
  EXPECT_EQ(env.Get("DISKWIRE_NODE"), "a=b");
  EXPECT_EQ(env.Get("PATH"), std::nullopt);
}

TEST_F(ConfigTest, DefaultsOfTheMinimalConfiguration) {
  ASSERT_OK_AND_ASSIGN(Config c, Parse(Minimal()));
  EXPECT_EQ(c.send_volume, volume_);
  EXPECT_EQ(c.recv_volume, volume_);
  EXPECT_EQ(c.select.ToString(), "*:7000");
  EXPECT_EQ(c.mode, Mode::kFailover);
  EXPECT_EQ(c.detect_ms, 2000);
  EXPECT_EQ(c.peer_timeout_ms, 10000);
  EXPECT_EQ(c.max_lag_ms, 1000);
  EXPECT_EQ(c.heartbeat_ms, 1000);
  EXPECT_EQ(c.poll_ms, 5);
  EXPECT_EQ(c.replay_cap, 4u << 20);
  EXPECT_EQ(c.durability, Durability::kNone);
  EXPECT_EQ(c.key_file, "");
  EXPECT_EQ(c.node, "node-a");
  EXPECT_EQ(c.log_sink, LogSink::kDefault);
  EXPECT_EQ(c.log_level, LogLevel::kInfo);
  EXPECT_FALSE(c.passthrough_on_error);
}

TEST_F(ConfigTest, EveryVariableSet) {
  std::string send = Path("send"), recv = Path("recv");
  mkdir(send.c_str(), 0700);
  mkdir(recv.c_str(), 0700);
  std::string key = WriteFile("key", 32);
  ASSERT_OK_AND_ASSIGN(
      Config c, Parse(Minimal({{"DISKWIRE_VOLUME", ""},
                               {"DISKWIRE_SEND_VOLUME", send},
                               {"DISKWIRE_RECV_VOLUME", recv},
                               {"DISKWIRE_SELECT", "10.0.0.0/8:*, [::1]:22"},
                               {"DISKWIRE_MODE", " Storage"},
                               {"DISKWIRE_DETECT_MS", "500"},
                               {"DISKWIRE_PEER_TIMEOUT_MS", "400"},
                               {"DISKWIRE_HEARTBEAT_MS", "200"},
                               {"DISKWIRE_MAX_LAG_MS", "50"},
                               {"DISKWIRE_POLL_MS", "2"},
                               {"DISKWIRE_REPLAY_CAP", "16m"},
                               {"DISKWIRE_DURABILITY", "interval:20"},
                               {"DISKWIRE_RESUME", "off"},
                               {"DISKWIRE_RESUME_PORT", "7400-7499"},
                               {"DISKWIRE_KEY_FILE", key},
                               {"DISKWIRE_NODE", "Host_1.dc-2"},
                               {"DISKWIRE_LOG", Path("dw.log")},
                               {"DISKWIRE_LOG_LEVEL", "DEBUG"},
                               {"DISKWIRE_ON_ERROR", "passthrough"}})));
  EXPECT_EQ(c.send_volume, send);
  EXPECT_EQ(c.recv_volume, recv);
  EXPECT_EQ(c.select.ToString(), "10.0.0.0/8:*,[::1]:22");
  EXPECT_EQ(c.mode, Mode::kStorage);
  EXPECT_EQ(c.detect_ms, 500);
  EXPECT_EQ(c.peer_timeout_ms, 400);
  EXPECT_EQ(c.heartbeat_ms, 200);
  EXPECT_EQ(c.max_lag_ms, 50);
  EXPECT_EQ(c.poll_ms, 2);
  EXPECT_EQ(c.replay_cap, 16u << 20);
  EXPECT_EQ(c.durability, Durability::kInterval);
  EXPECT_EQ(c.fsync_interval_ms, 20);
  EXPECT_EQ(c.key_file, key);
  EXPECT_EQ(c.key, std::string(32, 'k'));
  EXPECT_EQ(c.node, "Host_1.dc-2");
  EXPECT_EQ(c.log_sink, LogSink::kFile);
  EXPECT_EQ(c.log_path, Path("dw.log"));
  EXPECT_EQ(c.log_level, LogLevel::kDebug);
  EXPECT_TRUE(c.passthrough_on_error);
  EXPECT_FALSE(c.resume);
  EXPECT_EQ(c.resume_port_lo, 7400);
  EXPECT_EQ(c.resume_port_hi, 7499);
  EXPECT_EQ(c.Summary(),
            absl::StrCat("send_volume=", send, " recv_volume=", recv,
                         " select=10.0.0.0/8:*,[::1]:22 mode=storage "
                         "node=Host_1.dc-2 detect_ms=500 peer_timeout_ms=400 "
                         "max_lag_ms=50 heartbeat_ms=200 poll_ms=2 "
                         "replay_cap=16777216 resume=off "
                         "resume_port=7400-7499 durability=interval:20 "
                         "key_file=",
                         key, " log=", Path("dw.log"),
                         " log_level=debug on_error=passthrough"));
}

TEST_F(ConfigTest, ValidValueForms) {
  struct Case {
    const char* name;
    const char* value;
    std::string (*get)(const Config&);
    const char* expect;
  };
  auto cap = [](const Config& c) { return absl::StrCat(c.replay_cap); };
  auto dur = [](const Config& c) {
    return DurabilityName(c.durability, c.fsync_interval_ms);
  };
  auto log = [](const Config& c) {
    return std::string(LogSinkName(c.log_sink));
  };
  auto level = [](const Config& c) {
    return std::string(LogLevelName(c.log_level));
  };
  auto detect = [](const Config& c) { return absl::StrCat(c.detect_ms); };
  auto port = [](const Config& c) {
    return absl::StrCat(c.resume ? "on " : "off ", c.resume_port_lo, "-",
                        c.resume_port_hi);
  };
  const Case cases[] = {
      {"DISKWIRE_RESUME_PORT", "0", port, "on 0-0"},
      {"DISKWIRE_RESUME_PORT", "7400", port, "on 7400-7400"},
      {"DISKWIRE_RESUME_PORT", " 7400-7401 ", port, "on 7400-7401"},
      {"DISKWIRE_RESUME", "OFF", port, "off 0-0"},
      {"DISKWIRE_REPLAY_CAP", "65536", cap, "65536"},
      {"DISKWIRE_REPLAY_CAP", "64K", cap, "65536"},
      {"DISKWIRE_REPLAY_CAP", "1g", cap, "1073741824"},
      {"DISKWIRE_DURABILITY", "batch", dur, "batch"},
      {"DISKWIRE_DURABILITY", "interval", dur, "interval:100"},
      {"DISKWIRE_DURABILITY", "NONE", dur, "none"},
      {"DISKWIRE_LOG", "off", log, "off"},
      {"DISKWIRE_LOG", "stderr", log, "stderr"},
      {"DISKWIRE_LOG", "SysLog", log, "syslog"},
      {"DISKWIRE_LOG_LEVEL", "warning", level, "warn"},
      {"DISKWIRE_LOG_LEVEL", "error", level, "error"},
      {"DISKWIRE_DETECT_MS", " 50 ", detect, "50"},
      {"DISKWIRE_DETECT_MS", "600000", detect, "600000"},
  };
  for (const Case& c : cases) {
    ASSERT_OK_AND_ASSIGN(Config config, Parse(Minimal({{c.name, c.value}})));
    EXPECT_EQ(c.get(config), c.expect) << c.name << "=" << c.value;
  }
}

TEST_F(ConfigTest, MalformedValuesNameTheVariableAndToken) {
  const std::pair<Vars, std::string> cases[] = {
      {{{"DISKWIRE_SELECT", "10.0.0.0/8:70x0"}},
       "DISKWIRE_SELECT: bad port \"70x0\" in \"10.0.0.0/8:70x0\" (want *, "
       "1..65535 or a range LO-HI)"},
      {{{"DISKWIRE_SELECT", " "}}, "DISKWIRE_SELECT: empty rule list"},
      {{{"DISKWIRE_RESUME", "maybe"}},
       "DISKWIRE_RESUME: bad value \"maybe\" (want on or off)"},
      {{{"DISKWIRE_RESUME_PORT", "7500-7400"}},
       "DISKWIRE_RESUME_PORT: bad value \"7500-7400\" (want 0, a port, or "
       "LO-HI ports in 1..65535)"},
      {{{"DISKWIRE_RESUME_PORT", "70000"}},
       "DISKWIRE_RESUME_PORT: bad value \"70000\" (want 0, a port, or "
       "LO-HI ports in 1..65535)"},
      {{{"DISKWIRE_MODE", "fast"}},
       "DISKWIRE_MODE: bad value \"fast\" (want failover or storage)"},
      {{{"DISKWIRE_DETECT_MS", "2s"}},
       "DISKWIRE_DETECT_MS: bad value \"2s\" (want milliseconds, "
       "50..600000)"},
      {{{"DISKWIRE_DETECT_MS", "-1"}},
       "DISKWIRE_DETECT_MS: bad value \"-1\" (want milliseconds, "
       "50..600000)"},
      {{{"DISKWIRE_DETECT_MS", "49"}},
       "DISKWIRE_DETECT_MS: 49 is out of range (want milliseconds, "
       "50..600000)"},
      {{{"DISKWIRE_DETECT_MS", "99999999999999999999"}},
       "DISKWIRE_DETECT_MS: bad value \"99999999999999999999\" (want "
       "milliseconds, 50..600000)"},
      {{{"DISKWIRE_POLL_MS", "0"}},
       "DISKWIRE_POLL_MS: 0 is out of range (want milliseconds, 1..10000)"},
      {{{"DISKWIRE_HEARTBEAT_MS", "9"}},
       "DISKWIRE_HEARTBEAT_MS: 9 is out of range (want milliseconds, "
       "10..60000)"},
      {{{"DISKWIRE_PEER_TIMEOUT_MS", "1999"}},
       "DISKWIRE_PEER_TIMEOUT_MS: 1999 is less than twice "
       "DISKWIRE_HEARTBEAT_MS (1000): one late heartbeat would declare a live "
       "peer dead"},
      {{{"DISKWIRE_MAX_LAG_MS", "4"}},
       "DISKWIRE_MAX_LAG_MS: 4 is less than DISKWIRE_POLL_MS (5): the bound "
       "could not be met"},
      {{{"DISKWIRE_REPLAY_CAP", "4MB"}},
       "DISKWIRE_REPLAY_CAP: bad value \"4MB\" (want bytes with an optional "
       "K, M or G suffix, 64K..1G)"},
      {{{"DISKWIRE_REPLAY_CAP", "M"}},
       "DISKWIRE_REPLAY_CAP: bad value \"M\" (want bytes with an optional K, "
       "M or G suffix, 64K..1G)"},
      {{{"DISKWIRE_REPLAY_CAP", "63K"}},
       "DISKWIRE_REPLAY_CAP: \"63K\" is out of range (want 64K..1G)"},
      {{{"DISKWIRE_REPLAY_CAP", "2G"}},
       "DISKWIRE_REPLAY_CAP: \"2G\" is out of range (want 64K..1G)"},
      {{{"DISKWIRE_REPLAY_CAP", "99999999999999G"}},
       "DISKWIRE_REPLAY_CAP: \"99999999999999G\" is out of range (want "
       "64K..1G)"},
      {{{"DISKWIRE_DURABILITY", "always"}},
       "DISKWIRE_DURABILITY: bad value \"always\" (want none, batch or "
       "interval[:MS])"},
      {{{"DISKWIRE_DURABILITY", "interval:0"}},
       "DISKWIRE_DURABILITY: bad interval \"0\" in \"interval:0\" (want "
       "milliseconds, 1..60000)"},
      {{{"DISKWIRE_NODE", "host a"}},
       "DISKWIRE_NODE: bad value \"host a\" (want 1 to 64 of A-Z a-z 0-9 . _ "
       "-)"},
      {{{"DISKWIRE_NODE", "a/b"}},
       "DISKWIRE_NODE: bad value \"a/b\" (want 1 to 64 of A-Z a-z 0-9 . _ -)"},
      {{{"DISKWIRE_NODE", std::string(65, 'n')}},
       absl::StrCat("DISKWIRE_NODE: bad value \"", std::string(65, 'n'),
                    "\" (want 1 to 64 of A-Z a-z 0-9 . _ -)")},
      {{{"DISKWIRE_NODE", ".."}},
       "DISKWIRE_NODE: bad value \"..\" (want a name that does not start "
       "with \".\")"},
      // Names starting with "." are the volume's temporary files: no
      // heartbeat could ever be written.
      {{{"DISKWIRE_NODE", ".db1"}},
       "DISKWIRE_NODE: bad value \".db1\" (want a name that does not start "
       "with \".\")"},
      {{{"DISKWIRE_LOG", "journal"}},
       "DISKWIRE_LOG: bad value \"journal\" (want stderr, syslog, off or an "
       "absolute file path)"},
      {{{"DISKWIRE_LOG", "/nonexistent-dir/x.log"}},
       "DISKWIRE_LOG: cannot use \"/nonexistent-dir\": No such file or "
       "directory"},
      {{{"DISKWIRE_LOG", "/tmp/"}},
       "DISKWIRE_LOG: \"/tmp/\" names a directory"},
      {{{"DISKWIRE_LOG", "/tmp"}}, "DISKWIRE_LOG: \"/tmp\" is a directory"},
      {{{"DISKWIRE_LOG_LEVEL", "verbose"}},
       "DISKWIRE_LOG_LEVEL: bad value \"verbose\" (want error, warn, info or "
       "debug)"},
      {{{"DISKWIRE_ON_ERROR", "ignore"}},
       "DISKWIRE_ON_ERROR: bad value \"ignore\" (want fail or passthrough)"},
      {{{"DISKWIRE_VOLUME", "relative/dir"}},
       "DISKWIRE_VOLUME: \"relative/dir\" is not an absolute path (the "
       "program may change directory)"},
      {{{"DISKWIRE_VOLUME", "/nonexistent-volume"}},
       "DISKWIRE_VOLUME: cannot use \"/nonexistent-volume\": No such file or "
       "directory"},
      {{{"DISKWIRE_VOLUME", "/dev/null"}},
       "DISKWIRE_VOLUME: \"/dev/null\" is not a directory"},
  };
  for (const auto& [extra, message] : cases) {
    EXPECT_EQ(Error(extra), message)
        << extra.begin()->first << "=" << extra.begin()->second;
  }
}

TEST_F(ConfigTest, ErrorCodesAreInvalidArgumentOrTheErrno) {
  EXPECT_THAT(Parse(Minimal({{"DISKWIRE_MODE", "x"}})),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Parse(Minimal({{"DISKWIRE_VOLUME", "/nonexistent-volume"}})),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(ConfigTest, UnknownVariablesAreTyposWithSuggestions) {
  EXPECT_EQ(Error({{"DISKWIRE_VOLUM", "/x"}}),
            "DISKWIRE_VOLUM: unknown variable (did you mean DISKWIRE_VOLUME?)");
  EXPECT_EQ(Error({{"DISKWIRE_DETECT", "5"}}),
            "DISKWIRE_DETECT: unknown variable (did you mean "
            "DISKWIRE_DETECT_MS?)");
  EXPECT_EQ(Error({{"DISKWIRE_SELECTT", "5"}}),
            "DISKWIRE_SELECTT: unknown variable (did you mean "
            "DISKWIRE_SELECT?)");
  EXPECT_EQ(Error({{"DISKWIRE_FROBNICATE", "1"}}),
            "DISKWIRE_FROBNICATE: unknown variable (diskwire --help lists the "
            "variables)");
  EXPECT_EQ(NearestVariable("DISKWIRE_LOGLEVEL"),
            std::string("DISKWIRE_LOG_LEVEL"));
  EXPECT_EQ(NearestVariable("SOMETHING_ELSE_ENTIRELY"), nullptr);
}

TEST_F(ConfigTest, VolumeCombinations) {
  std::string other = Path("other");
  mkdir(other.c_str(), 0700);
  EXPECT_EQ(Error({{"DISKWIRE_SEND_VOLUME", other}}),
            "DISKWIRE_VOLUME: set together with DISKWIRE_SEND_VOLUME; use "
            "VOLUME for one shared volume, or SEND_VOLUME and RECV_VOLUME for "
            "two");
  EXPECT_EQ(Error({{"DISKWIRE_VOLUME", ""}, {"DISKWIRE_SEND_VOLUME", other}}),
            "DISKWIRE_RECV_VOLUME: not set, but DISKWIRE_SEND_VOLUME is (set "
            "both, or DISKWIRE_VOLUME alone)");
  EXPECT_EQ(Error({{"DISKWIRE_VOLUME", ""}, {"DISKWIRE_RECV_VOLUME", other}}),
            "DISKWIRE_SEND_VOLUME: not set, but DISKWIRE_RECV_VOLUME is (set "
            "both, or DISKWIRE_VOLUME alone)");
  EXPECT_EQ(Error({{"DISKWIRE_VOLUME", ""}}),
            "DISKWIRE_VOLUME: not set, but DISKWIRE_NODE, DISKWIRE_SELECT are "
            "(diskwire needs a volume; unset every DISKWIRE_* variable to run "
            "without it)");
  EXPECT_EQ(Error({{"DISKWIRE_VOLUME", ""},
                   {"DISKWIRE_SEND_VOLUME", other},
                   {"DISKWIRE_RECV_VOLUME", Path("missing")}}),
            absl::StrCat("DISKWIRE_RECV_VOLUME: cannot use \"", Path("missing"),
                         "\": No such file or directory"));
  // A file that is not a formatted LUN image is refused at once, not at the
  // first connection.
  EXPECT_EQ(Error({{"DISKWIRE_VOLUME", WriteFile("lun.img", 4096)}}),
            absl::StrCat("DISKWIRE_VOLUME: \"", Path("lun.img"),
                         "\" is a regular file that is not a diskwire volume "
                         "(lay one on it with diskwire format, or give a "
                         "directory)"));
  const std::string long_path = "/" + std::string(PATH_MAX - 200, 'v');
  EXPECT_EQ(Error({{"DISKWIRE_VOLUME", long_path}}),
            absl::StrCat("DISKWIRE_VOLUME: the path is ", long_path.size(),
                         " characters long; paths inside the volume would "
                         "pass PATH_MAX (",
                         PATH_MAX, "): use a shorter one"));
  // `diskwire run -- CMD` with no settings at all.
  EXPECT_EQ(std::string(Parse({}).status().message()),
            "DISKWIRE_VOLUME: not set (diskwire needs a volume, and a "
            "selection of the connections it carries)");
}

TEST_F(ConfigTest, SelectIsRequired) {
  EXPECT_EQ(Error({{"DISKWIRE_SELECT", ""}}),
            "DISKWIRE_SELECT: not set (say which connections to carry, e.g. "
            "7000 or 10.0.0.0/8:*; * selects every TCP connection)");
}

TEST_F(ConfigTest, KeyFileChecks) {
  const std::string hint =
      " bytes; a key is 32 raw bytes or 64 hex digits (make one with: head -c "
      "32 /dev/urandom > FILE)";
  EXPECT_EQ(Error({{"DISKWIRE_KEY_FILE", WriteFile("short", 31)}}),
            absl::StrCat("DISKWIRE_KEY_FILE: \"", Path("short"), "\" holds 31",
                         hint));
  EXPECT_EQ(
      Error({{"DISKWIRE_KEY_FILE", WriteFile("long", 33)}}),
      absl::StrCat("DISKWIRE_KEY_FILE: \"", Path("long"), "\" holds 33", hint));
  EXPECT_EQ(Error({{"DISKWIRE_KEY_FILE", WriteFile("big", 4097)}}),
            absl::StrCat("DISKWIRE_KEY_FILE: \"", Path("big"),
                         "\" holds more than 4096", hint));
  EXPECT_EQ(Error({{"DISKWIRE_KEY_FILE", Path("absent")}}),
            absl::StrCat("DISKWIRE_KEY_FILE: cannot use \"", Path("absent"),
                         "\": No such file or directory"));
  EXPECT_EQ(
      Error({{"DISKWIRE_KEY_FILE", dir_}}),
      absl::StrCat("DISKWIRE_KEY_FILE: \"", dir_, "\" is not a regular file"));
  // A FIFO must not block the program (nobody writes it), nor a device.
  const std::string fifo = Path("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(
      Error({{"DISKWIRE_KEY_FILE", fifo}}),
      absl::StrCat("DISKWIRE_KEY_FILE: \"", fifo, "\" is not a regular file"));
  EXPECT_EQ(Error({{"DISKWIRE_KEY_FILE", "key"}}),
            "DISKWIRE_KEY_FILE: \"key\" is not an absolute path (the program "
            "may change directory)");
}

TEST_F(ConfigTest, KeyFileThatOthersCanReadIsAWarning) {
  const std::string key = WriteFile("key", 32);
  ASSERT_EQ(chmod(key.c_str(), 0600), 0);
  absl::StatusOr<Config> c = Parse(Minimal({{"DISKWIRE_KEY_FILE", key}}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->warnings.empty());
  ASSERT_EQ(chmod(key.c_str(), 0644), 0);
  c = Parse(Minimal({{"DISKWIRE_KEY_FILE", key}}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->warnings,
            std::vector<std::string>{absl::StrCat(
                "DISKWIRE_KEY_FILE: \"", key,
                "\" is readable by others (mode 0644): whoever reads it can "
                "forge records; chmod 600 it")});
}

TEST_F(ConfigTest, KeyFileHoldsRawOrHexKey) {
  std::string hex_path = Path("hex");
  std::string hex;
  for (int i = 0; i < 32; ++i)
    absl::StrAppend(&hex, i < 16 ? "0" : "", absl::Hex(i));
  std::ofstream(hex_path) << hex << "\n";
  ASSERT_OK_AND_ASSIGN(Config c,
                       Parse(Minimal({{"DISKWIRE_KEY_FILE", hex_path}})));
  ASSERT_EQ(c.key.size(), 32u);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(c.key[i], static_cast<char>(i));
  std::ofstream(hex_path) << hex.substr(1) << "g\n";  // Not hex.
  EXPECT_THAT(Parse(Minimal({{"DISKWIRE_KEY_FILE", hex_path}})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       testing::HasSubstr("holds 65 bytes")));
}

TEST_F(ConfigTest, UnreadableKeyFileReportsTheErrno) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads any file";
  std::string key = WriteFile("locked", 64);
  chmod(key.c_str(), 0);
  EXPECT_EQ(Error({{"DISKWIRE_KEY_FILE", key}}),
            absl::StrCat("DISKWIRE_KEY_FILE: cannot use \"", key,
                         "\": Permission denied"));
}

TEST_F(ConfigTest, NodeDefaultsToTheHostName) {
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof(host) - 1), 0);
  absl::StatusOr<Config> c = Parse(Minimal({{"DISKWIRE_NODE", ""}}));
  if (ParseNodeName("DISKWIRE_NODE", host).ok()) {
    ASSERT_THAT(c, IsOk());
    EXPECT_EQ(c->node, host);
  } else {
    EXPECT_THAT(c, StatusIs(absl::StatusCode::kInvalidArgument,
                            testing::HasSubstr("set it")));
  }
}

TEST_F(ConfigTest, PassthroughOnErrorIsReadableAlone) {
  EXPECT_TRUE(Config::PassthroughOnError(EnvLookup(
      {{"DISKWIRE_ON_ERROR", "passthrough"}, {"DISKWIRE_MODE", "bad"}})));
  EXPECT_FALSE(Config::PassthroughOnError(EnvLookup(Vars{})));
  EXPECT_FALSE(Config::PassthroughOnError(
      EnvLookup(Vars{{"DISKWIRE_ON_ERROR", "fail"}})));
  EXPECT_FALSE(Config::PassthroughOnError(
      EnvLookup(Vars{{"DISKWIRE_ON_ERROR", "junk"}})));
}

TEST_F(ConfigTest, VariablesTableIsConsistent) {
  EXPECT_EQ(Variables().size(), 19u);
  for (const VariableInfo& v : Variables()) {
    EXPECT_EQ(NearestVariable(v.name), std::string(v.name));
    EXPECT_NE(std::string(v.help), "");
  }
}

}  // namespace
}  // namespace diskwire
