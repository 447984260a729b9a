// diskwire status on real volumes: heartbeats published through the storage
// API with EncodeProcessReport payloads (two "hosts" are two Volume objects
// with different node names on one directory), a dead node's old heartbeat
// written in the on-volume format, and foreign or corrupt files.

#include "cli/status_command.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/base/internal/endian.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/dir_volume.h"
#include "storage/mirror_lag.h"
#include "storage/record_codec.h"
#include "storage/test_util.h"

namespace diskwire {
namespace {

using storage::ScratchDir;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint64_t kSecond = 1'000'000'000;
const SessionId kSession = {0x1111222233334444, 0x5555666677778888};
const std::string kSessionHex = "11112222333344445555666677778888";

SessionReport End(Role role, const std::string& state) {
  SessionReport r;
  r.id = kSession;
  r.role = role;
  r.state = state;
  r.local = role == Role::kClient ? "10.0.0.1:40000" : "10.0.0.2:5001";
  r.remote = role == Role::kClient ? "10.0.0.2:5001" : "10.0.0.1:40000";
  return r;
}

class StatusTest : public ::testing::Test {
 protected:
  std::unique_ptr<storage::Volume> Host(const std::string& node) {
    storage::DirVolumeOptions o;
    o.node = node;
    auto v = storage::OpenDirVolume(dir_.path(), o);
    EXPECT_THAT(v, IsOk());
    return std::move(*v);
  }

  static ProcessReport ReportOf(std::vector<SessionReport> sessions) {
    ProcessReport report;
    report.sessions = std::move(sessions);
    return report;
  }

  void Publish(const std::string& node, const std::string& process_id,
               std::vector<SessionReport> sessions) {
    ProcessReport report;
    report.sessions = std::move(sessions);
    ASSERT_THAT(
        Host(node)->PublishHeartbeat(process_id, EncodeProcessReport(report)),
        IsOk());
  }

  // A heartbeat file as a process that died at `time_ns` left it.
  void WriteOldHeartbeat(const std::string& node, const std::string& process_id,
                         uint64_t time_ns, const std::string& payload) {
    std::string body(4, '\0');
    absl::little_endian::Store32(body.data(), 4242);
    for (const std::string& s : {process_id, node}) {
      char len[2];
      absl::little_endian::Store16(len, static_cast<uint16_t>(s.size()));
      body.append(len, 2);
      body += s;
    }
    body += payload;
    storage::RecordHeader h;
    h.type = storage::RecordType::kHeartbeat;
    h.stream_offset = 7;
    h.timestamp_ns = time_ns;
    std::string bytes;
    storage::AppendEncodedRecord(h, body, /*commit=*/true, "", &bytes);
    storage::WriteFileBytes(HeartbeatPath(process_id), bytes);
  }

  std::string HeartbeatPath(const std::string& process_id) {
    return dir_.path() + "/heartbeats/" + process_id + ".hb";
  }

  VolumeStatus Collect(uint64_t now_ns, StatusLimits limits = {}) {
    auto v = Host("viewer");
    auto s = CollectStatus(*v, dir_.path(), now_ns, limits);
    EXPECT_THAT(s, IsOk());
    return s.ok() ? *std::move(s) : VolumeStatus{};
  }

  static uint64_t Now() { return absl::ToUnixNanos(absl::Now()); }

  // mirror/<name>.status as `diskwire mirror` writes it
  // (storage/mirror_run.cc): MirrorStatusText to a dot temp file, renamed over
  // the status file.
  void WriteMirrorStatus(const storage::MirrorStatusInfo& info,
                         const storage::LagStats& lag) {
    Host("storage");  // the target is a volume before the mirror writes it
    std::filesystem::create_directories(dir_.path() + "/mirror");
    const std::string tmp = MirrorPath(".tmp-" + info.name + ".status");
    storage::WriteFileBytes(tmp, storage::MirrorStatusText(info, lag));
    std::filesystem::rename(tmp, MirrorPath(info.name + ".status"));
  }

  static storage::MirrorStatusInfo MirrorInfo(const std::string& name,
                                              uint64_t updated_ns) {
    storage::MirrorStatusInfo info;
    info.name = name;
    info.from = "/arrays/a-send";
    info.to = "/arrays/b-recv";
    info.now_ns = updated_ns;
    info.records = 21874;
    info.bytes = 16u << 20;
    return info;
  }

  std::string MirrorPath(const std::string& file) {
    return dir_.path() + "/mirror/" + file;
  }

  ScratchDir dir_;
};

TEST_F(StatusTest, EmptyVolumeHasNoProcessesNoSessions) {
  VolumeStatus s = Collect(Now());
  EXPECT_TRUE(s.processes.empty());
  EXPECT_TRUE(s.sessions.empty());
  std::string text = FormatStatusText(s);
  EXPECT_THAT(text, HasSubstr("0 processes (0 alive, 0 stale"));
  EXPECT_THAT(FormatStatusJson(s),
              HasSubstr("\"processes\": [],\n \"sessions\": [],\n "
                        "\"mirrors\": [],\n \"problems\": []}"));
  EXPECT_THAT(text, Not(HasSubstr("mirrors:")));
}

TEST_F(StatusTest, MirrorStatusShowsLagAndFlagsItOverMax) {
  const uint64_t now = Now();
  storage::LagStats lag;
  for (int i = 1; i <= 100; ++i) lag.Add("s-1-c2s", i * 1'000'000);  // 1..100ms
  lag.Add("s-1-s2c", 1'500'000'000);                                 // 1.5 s
  storage::MirrorStatusInfo info = MirrorInfo("ab", now - kSecond / 2);
  info.channel_errors["s-2-c2s"] = "offset 176: record checksum mismatch";
  WriteMirrorStatus(info, lag);

  VolumeStatus s = Collect(now);
  ASSERT_EQ(s.mirrors.size(), 1u);
  const MirrorStatus& m = s.mirrors[0];
  EXPECT_EQ(m.name, "ab");
  EXPECT_EQ(m.from, "/arrays/a-send");
  EXPECT_EQ(m.to, "/arrays/b-recv");
  EXPECT_EQ(m.age_ms, 500);
  EXPECT_FALSE(m.stale);
  EXPECT_EQ(m.records, 21874u);
  EXPECT_EQ(m.bytes, 16u << 20);
  EXPECT_EQ(m.samples, 101u);
  EXPECT_EQ(m.lag_p50_us, 51'000);
  EXPECT_EQ(m.lag_max_us, 1'500'000);
  EXPECT_EQ(m.channels, 3u);
  EXPECT_EQ(m.channels_in_error, 1u);
  EXPECT_TRUE(m.lag_over_max);
  EXPECT_THAT(s.problems,
              ::testing::ElementsAre(
                  "mirror/ab.status: channel s-2-c2s: error: offset 176: "
                  "record checksum mismatch"));

  std::string text = FormatStatusText(s);
  EXPECT_THAT(text, HasSubstr("\nmirrors:\nMIRROR"));
  EXPECT_THAT(text, HasSubstr("/arrays/a-send > /arrays/b-recv"));
  EXPECT_THAT(text, HasSubstr("3 (1 stopped)"));
  EXPECT_THAT(text, HasSubstr("51.0/100.0/1500.0 ms  LAG OVER 1000 ms"));
  std::string json = FormatStatusJson(s);
  EXPECT_THAT(json, HasSubstr("\"mirrors\": [{\"name\": \"ab\", "));
  EXPECT_THAT(json, HasSubstr("\"age_ms\": 500, \"stale\": false"));
  EXPECT_THAT(json, HasSubstr("\"lag_max_us\": 1500000, "
                              "\"lag_over_max\": true}"));

  // Under a higher limit the same mirror is not flagged.
  StatusLimits loose;
  loose.max_lag_ms = 2000;
  VolumeStatus relaxed = Collect(now, loose);
  ASSERT_EQ(relaxed.mirrors.size(), 1u);
  EXPECT_FALSE(relaxed.mirrors[0].lag_over_max);
  EXPECT_THAT(FormatStatusText(relaxed), Not(HasSubstr("LAG OVER")));
}

TEST_F(StatusTest, MirrorWhoseStatusFileStoppedChangingIsStale) {
  const uint64_t now = Now();
  storage::LagStats lag;
  lag.Add("s-1-c2s", 2'000'000);
  WriteMirrorStatus(MirrorInfo("ab", now - 10 * kSecond), lag);
  WriteMirrorStatus(MirrorInfo("ba", now - kSecond), lag);
  VolumeStatus s = Collect(now);
  ASSERT_EQ(s.mirrors.size(), 2u);
  EXPECT_EQ(s.mirrors[0].name, "ab");
  EXPECT_EQ(s.mirrors[0].age_ms, 10'000);
  EXPECT_TRUE(s.mirrors[0].stale);
  EXPECT_EQ(s.mirrors[1].name, "ba");
  EXPECT_FALSE(s.mirrors[1].stale);
  EXPECT_FALSE(s.mirrors[1].lag_over_max);
  EXPECT_TRUE(s.problems.empty());
  std::string text = FormatStatusText(s);
  EXPECT_THAT(text, HasSubstr("10.0 s ago  STALE"));
  EXPECT_THAT(text, HasSubstr("1.0 s ago   ok"));
  EXPECT_THAT(FormatStatusJson(s), HasSubstr("\"stale\": true"));
}

TEST_F(StatusTest, CorruptAndForeignMirrorFilesAreProblemsNotFatal) {
  const uint64_t now = Now();
  storage::LagStats lag;
  lag.Add("s-1-c2s", 2'000'000);
  WriteMirrorStatus(MirrorInfo("good", now), lag);
  std::string text = storage::MirrorStatusText(MirrorInfo("x", now), lag);
  // Corrupt: a lag figure overwritten; truncated: the tail missing.
  std::string corrupt = text;
  corrupt.replace(corrupt.find("lag_ms p50 ") + 11, 1, "?");
  storage::WriteFileBytes(MirrorPath("corrupt.status"),
                          absl::StrCat("mirror corrupt", corrupt.substr(8)));
  storage::WriteFileBytes(MirrorPath("cut.status"),
                          absl::StrCat("mirror cut", text.substr(8, 40)));
  storage::WriteFileBytes(MirrorPath("other.status"), text);  // names "x"
  storage::WriteFileBytes(MirrorPath("foreign.status"), "hello\n");
  storage::WriteFileBytes(MirrorPath("notes.txt"), "mine\n");
  storage::WriteFileBytes(MirrorPath(".tmp-good.status"), "half");
  std::filesystem::create_directories(MirrorPath("requests"));

  VolumeStatus s = Collect(now);
  ASSERT_EQ(s.mirrors.size(), 1u);
  EXPECT_EQ(s.mirrors[0].name, "good");
  EXPECT_THAT(
      s.problems,
      ::testing::ElementsAre(
          HasSubstr("mirror/corrupt.status: corrupt line \"lag_ms p50 ?"),
          "mirror/cut.status: truncated",
          "mirror/foreign.status: not a mirror status file (foreign)",
          "mirror/notes.txt: not a mirror status file (foreign)",
          "mirror/other.status: names mirror \"x\", not \"other\""));
  EXPECT_THAT(FormatStatusText(s),
              HasSubstr("problems on the volume:\n  mirror/corrupt.status"));
}

TEST_F(StatusTest, BothEndsOfALiveSessionAreMatched) {
  SessionReport c = End(Role::kClient, "STORAGE");
  c.bytes_out_network = 16 << 20;
  c.bytes_out_storage = 50 << 20;  // includes re-sent bytes
  c.sent_offset = 64 << 20;
  c.failover_ms = 1012;
  SessionReport v = End(Role::kServer, "STORAGE");
  v.bytes_in_network = 17 << 20;
  v.bytes_in_storage = 47 << 20;
  v.delivered_offset = 64 << 20;
  v.failover_ms = 1300;
  v.lag_p50_us = 300;
  v.lag_p99_us = 1200;
  v.lag_max_us = 4000;
  Publish("a", "a.10.1", {c});
  Publish("b", "b.20.2", {v});
  VolumeStatus s = Collect(Now());
  ASSERT_EQ(s.processes.size(), 2u);
  EXPECT_TRUE(s.processes[0].alive);
  EXPECT_EQ(s.processes[0].heartbeat.node, "a");
  ASSERT_EQ(s.sessions.size(), 1u);
  const SessionStatus& x = s.sessions[0];
  EXPECT_EQ(x.id, kSessionHex);
  ASSERT_TRUE(x.client && x.server);
  EXPECT_EQ(x.client->process->heartbeat.process_id, "a.10.1");
  EXPECT_EQ(x.server->process->heartbeat.process_id, "b.20.2");
  // The receiver's counts: new bytes only, so the two paths add up.
  EXPECT_EQ(x.bytes_network, 17u << 20);
  EXPECT_EQ(x.bytes_storage, 47u << 20);
  EXPECT_EQ(x.state, "STORAGE");
  EXPECT_EQ(x.failover_ms, 1300);
  EXPECT_EQ(x.lag_p99_us, 1200);
  EXPECT_FALSE(x.lag_over_max);

  std::string json = FormatStatusJson(s);
  EXPECT_THAT(json, HasSubstr("\"schema\": \"diskwire-status 1\""));
  EXPECT_THAT(json, HasSubstr(absl::StrCat(
                        "{\"id\": \"", kSessionHex,
                        "\", \"state\": \"STORAGE\", \"bytes_network\": ",
                        17 << 20, ", \"bytes_storage\": ", 47 << 20,
                        ", \"failover_ms\": 1300, \"lag_p50_us\": 300, "
                        "\"lag_p99_us\": 1200, \"lag_max_us\": 4000, "
                        "\"lag_over_max\": false")));
  EXPECT_THAT(json, HasSubstr("\"client\": {\"process_id\": \"a.10.1\", "
                              "\"node\": \"a\""));
  EXPECT_THAT(json, HasSubstr("\"lag_p50_us\": null"));  // the client's

  std::string text = FormatStatusText(s);
  EXPECT_THAT(text, HasSubstr("2 processes (2 alive, 0 stale"));
  EXPECT_THAT(text, HasSubstr("1 sessions (0 over max lag 1000 ms)"));
  EXPECT_THAT(text, HasSubstr("111122223333  client  a:"));
  EXPECT_THAT(text, HasSubstr("STORAGE  10.0.0.1:40000 > 10.0.0.2:5001  "
                              "16.0 MiB  0 B       50.0 MiB"))
      << text;
  EXPECT_THAT(text, HasSubstr("1300 ms   0.3/1.2/4.0 ms"));
}

TEST_F(StatusTest, CoveredListenersAreListedWithTheirHost) {
  ProcessReport report;
  report.addresses = "10.0.0.2,fd00::2";
  report.listeners = {"0.0.0.0:5001", "10.0.0.2:22"};
  ASSERT_THAT(
      Host("b")->PublishHeartbeat("b.20.2", EncodeProcessReport(report)),
      IsOk());
  VolumeStatus s = Collect(Now());
  ASSERT_EQ(s.processes.size(), 1u);
  EXPECT_THAT(s.processes[0].listeners,
              testing::ElementsAre("0.0.0.0:5001", "10.0.0.2:22"));
  std::vector<std::vector<std::string>> rows;
  for (absl::string_view line : absl::StrSplit(FormatStatusText(s), '\n')) {
    if (absl::StartsWith(line, "0.0.0.0:") || absl::StartsWith(line, "10."))
      rows.push_back(absl::StrSplit(line, ' ', absl::SkipEmpty()));
  }
  ASSERT_EQ(rows.size(), 2u) << FormatStatusText(s);
  EXPECT_EQ(rows[0][0], "0.0.0.0:5001");
  EXPECT_TRUE(absl::StartsWith(rows[0][1], "b:"));
  EXPECT_EQ(rows[0][2], "covered");
  EXPECT_EQ(rows[0][3], "10.0.0.2,fd00::2");
  EXPECT_THAT(FormatStatusJson(s),
              HasSubstr("\"listening\": [\"0.0.0.0:5001\", \"10.0.0.2:22\"], "
                        "\"udp\": null, \"addresses\": \"10.0.0.2,fd00::2\""));
}

TEST_F(StatusTest, UdpRelaysShowWhatTheyReceiveAndCarried) {
  ProcessReport report;
  report.udp.tag = "0123456789abcdef";
  report.udp.receivers = {"10.0.0.2:5405"};
  report.udp.out_storage = 12;
  report.udp.in_storage = 34;
  report.udp.dropped = 5;
  ASSERT_THAT(
      Host("b")->PublishHeartbeat("b.20.2", EncodeProcessReport(report)),
      IsOk());
  VolumeStatus s = Collect(Now());
  const std::string text = FormatStatusText(s);
  std::vector<std::string> row;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, "10.0.0.2:5405"))
      row = absl::StrSplit(line, ' ', absl::SkipEmpty());
  }
  ASSERT_EQ(row.size(), 6u) << text;
  EXPECT_EQ(row[2], "covered");
  EXPECT_EQ(row[3], "12");
  EXPECT_EQ(row[4], "34");
  EXPECT_EQ(row[5], "5");
  EXPECT_THAT(FormatStatusJson(s),
              HasSubstr("\"udp\": {\"receiving\": [\"10.0.0.2:5405\"], "
                        "\"out_storage\": 12, \"in_storage\": 34, "
                        "\"dropped\": 5}"));
}

TEST_F(StatusTest, VersionsAreShownAndADifferenceIsAProblem) {
  for (const auto& [node, id, version] :
       {std::tuple("a", "a.1.1", "0.2.0"), std::tuple("b", "b.2.2", "0.1.9")}) {
    ProcessReport report;
    report.version = version;
    ASSERT_THAT(Host(node)->PublishHeartbeat(id, EncodeProcessReport(report)),
                IsOk());
  }
  VolumeStatus s = Collect(Now());
  ASSERT_EQ(s.processes.size(), 2u);
  EXPECT_EQ(s.processes[0].version, "0.2.0");
  EXPECT_THAT(s.problems,
              testing::Contains(
                  "live processes run different diskwire versions: 0.1.9, "
                  "0.2.0"));
  EXPECT_THAT(FormatStatusText(s), HasSubstr("VERSION"));
  EXPECT_THAT(FormatStatusJson(s), HasSubstr("\"version\": \"0.1.9\""));
}

TEST_F(StatusTest, SessionProblemsAreListed) {
  SessionReport full = End(Role::kClient, "STORAGE");
  full.problem = "volume-full";
  SessionReport stalled = End(Role::kServer, "STORAGE");
  stalled.problem = "volume-stalled";
  Publish("a", "a.1.1", {full});
  Publish("b", "b.1.1", {stalled});
  VolumeStatus s = Collect(Now());
  EXPECT_THAT(s.problems,
              testing::Contains(HasSubstr(
                  "a.1.1): the volume is full: its writes wait for space")));
  EXPECT_THAT(
      s.problems,
      testing::Contains(HasSubstr("b.1.1): an append to the volume hangs")));
}

// The exposition parsed by Prometheus's own Python parser (Debian's
// python3-prometheus-client), with the values checked.
TEST_F(StatusTest, PrometheusExpositionParsesWithTheRealParser) {
  SessionReport c = End(Role::kClient, "STORAGE");
  c.failover_ms = 1012;
  c.resumes = 2;
  SessionReport v = End(Role::kServer, "STORAGE");
  v.bytes_in_network = 17 << 20;
  v.bytes_in_storage = 47 << 20;
  v.lag_p50_us = 300;
  v.lag_p99_us = 1200;
  v.lag_max_us = 4000;
  Publish("a", "a.10.1", {c});
  ProcessReport b;
  b.sessions = {v};
  b.rejected_records = 3;
  ASSERT_THAT(Host("b")->PublishHeartbeat("b.20.2", EncodeProcessReport(b)),
              IsOk());
  VolumeStatus s = Collect(Now());
  const std::string text = FormatStatusPrometheus(s);
  EXPECT_THAT(text, HasSubstr("diskwire_session_bytes{volume=\""));
  if (system("/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null") !=
      0) {
    GTEST_SKIP() << "SKIPPED: python3-prometheus-client is not installed "
                    "(apt-get install python3-prometheus-client)";
  }
  const std::string in = dir_.path() + "/metrics.prom";
  const std::string out = dir_.path() + "/parsed.txt";
  std::ofstream(in) << text;
  const std::string script =
      "import sys\n"
      "from prometheus_client.parser import text_string_to_metric_families\n"
      "for f in text_string_to_metric_families(open(sys.argv[1]).read()):\n"
      "  for x in f.samples:\n"
      "    labels = ','.join(k + '=' + v for k, v in sorted(x.labels.items())\n"
      "                      if k != 'volume')\n"
      "    print(x.name, labels, repr(x.value))\n";
  const std::string py = dir_.path() + "/parse.py";
  std::ofstream(py) << script;
  ASSERT_EQ(
      system(
          absl::StrCat("/usr/bin/python3 ", py, " ", in, " > ", out).c_str()),
      0)
      << text;
  std::ifstream parsed_in(out);
  std::stringstream parsed;
  parsed << parsed_in.rdbuf();
  const std::string p = parsed.str();
  EXPECT_THAT(p, HasSubstr("diskwire_processes state=alive 2.0"));
  EXPECT_THAT(p, HasSubstr("diskwire_sessions state=STORAGE 1.0"));
  EXPECT_THAT(p, HasSubstr("diskwire_sessions_failed_over  1.0"));
  EXPECT_THAT(p, HasSubstr("diskwire_resumes  2.0"));
  EXPECT_THAT(p, HasSubstr(absl::StrCat("diskwire_session_bytes path=storage ",
                                        47 << 20, ".0")));
  EXPECT_THAT(p, HasSubstr(absl::StrCat("diskwire_storage_lag_seconds "
                                        "quantile=0.99,session=",
                                        kSessionHex, " 0.0012")));
  EXPECT_THAT(p, HasSubstr("diskwire_volume_free_bytes"));
  EXPECT_THAT(p,
              HasSubstr("diskwire_records_rejected node=b,process=b.20.2 3.0"));
}

TEST_F(StatusTest, DeadNodeIsStale) {
  const uint64_t now = Now();
  Publish("a", "a.10.1", {End(Role::kClient, "STORAGE")});
  WriteOldHeartbeat(
      "b", "b.20.2", now - 60 * kSecond,
      EncodeProcessReport(ReportOf({End(Role::kServer, "STORAGE")})));
  VolumeStatus s = Collect(now);
  ASSERT_EQ(s.processes.size(), 2u);
  EXPECT_TRUE(s.processes[0].alive);
  EXPECT_FALSE(s.processes[1].alive);
  EXPECT_GE(s.processes[1].age_ms, 59'000);
  EXPECT_EQ(s.processes[1].heartbeat.pid, 4242);
  std::string text = FormatStatusText(s);
  EXPECT_THAT(text, HasSubstr("2 processes (1 alive, 1 stale: heartbeat "
                              "older than 3000 ms)"));
  // The row of the stale process, field by field: the column widths follow
  // the other row's pid, which is this test's own.
  std::vector<std::string> row;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StrContains(line, "b.20.2") && absl::StrContains(line, "STALE"))
      row = absl::StrSplit(line, ' ', absl::SkipEmpty());
  }
  ASSERT_GE(row.size(), 7u) << text;  // then the session counts
  EXPECT_THAT(
      std::vector<std::string>(row.begin(), row.begin() + 7),
      testing::ElementsAre("b", "4242", "b.20.2", "60.0", "s", "ago", "STALE"))
      << text;
  EXPECT_THAT(text, HasSubstr("server  b:4242 (stale)"));
  EXPECT_THAT(FormatStatusJson(s), HasSubstr("\"alive\": false"));
  // A longer peer timeout makes the same heartbeat alive.
  EXPECT_TRUE(Collect(now, {.stale_after_ms = 120'000}).processes[1].alive);
}

TEST_F(StatusTest, LagAboveTheBoundIsFlagged) {
  SessionReport v = End(Role::kServer, "STORAGE");
  v.lag_p50_us = 900;
  v.lag_p99_us = 40'000;
  v.lag_max_us = 250'000;
  Publish("b", "b.20.2", {v});
  EXPECT_FALSE(Collect(Now(), {.max_lag_ms = 250}).sessions[0].lag_over_max);
  VolumeStatus s = Collect(Now(), {.max_lag_ms = 200});
  EXPECT_TRUE(s.sessions[0].lag_over_max);
  EXPECT_THAT(FormatStatusText(s), HasSubstr("LAG OVER 200 ms"));
  EXPECT_THAT(FormatStatusText(s), HasSubstr("1 sessions (1 over max lag"));
  EXPECT_THAT(FormatStatusJson(s), HasSubstr("\"lag_over_max\": true"));
}

TEST_F(StatusTest, OneEndOnlyAndDifferingStates) {
  SessionReport c = End(Role::kClient, "DIRECT");
  c.bytes_out_network = 1000;
  c.bytes_in_network = 10;
  Publish("a", "a.10.1", {c});
  VolumeStatus s = Collect(Now());
  ASSERT_EQ(s.sessions.size(), 1u);
  EXPECT_FALSE(s.sessions[0].server.has_value());
  // No server report: its direction counted by the sender.
  EXPECT_EQ(s.sessions[0].bytes_network, 1010u);
  EXPECT_THAT(FormatStatusText(s),
              HasSubstr("server  (no report on this volume)"));
  EXPECT_THAT(FormatStatusJson(s), HasSubstr("\"server\": null"));

  Publish("b", "b.20.2", {End(Role::kServer, "FAILING_OVER")});
  EXPECT_EQ(Collect(Now()).sessions[0].state, "DIRECT/FAILING_OVER");
}

TEST_F(StatusTest, ForeignAndCorruptFilesAreReportedNotFatal) {
  Publish("a", "a.10.1", {End(Role::kClient, "DIRECT")});
  storage::WriteFileBytes(dir_.path() + "/heartbeats/notes.txt", "garbage");
  storage::WriteFileBytes(HeartbeatPath("junk"), std::string(100, 'x'));
  Publish("b", "b.20.2", {End(Role::kServer, "DIRECT")});
  std::string bytes = storage::ReadFileBytes(HeartbeatPath("b.20.2"));
  storage::WriteFileBytes(HeartbeatPath("b.20.2"),
                          bytes.substr(0, bytes.size() / 2));
  ASSERT_THAT(Host("c")->PublishHeartbeat("c.30.3", "not a session report"),
              IsOk());
  VolumeStatus s = Collect(Now());
  ASSERT_EQ(s.processes.size(), 2u);  // a, and c with an undecodable payload
  EXPECT_EQ(s.processes[1].heartbeat.process_id, "c.30.3");
  EXPECT_THAT(s.processes[1].problem, HasSubstr("diskwire-sessions 1"));
  ASSERT_EQ(s.sessions.size(), 1u);
  ASSERT_EQ(s.problems.size(), 4u);
  std::string text = FormatStatusText(s);
  EXPECT_THAT(text, HasSubstr("problems on the volume:\n"));
  EXPECT_THAT(text, HasSubstr("notes.txt: foreign file"));
  EXPECT_THAT(text, HasSubstr("b.20.2.hb: truncated"));
  EXPECT_THAT(text, HasSubstr("junk.hb"));
  EXPECT_THAT(text, HasSubstr("heartbeats/c.30.3.hb: undecodable payload"));
  std::string json = FormatStatusJson(s);
  EXPECT_THAT(json, HasSubstr("\"sessions\": null, \"problem\": \"session "
                              "report does not start with"));
}

TEST_F(StatusTest, JsonEscapesPlantedNames) {
  SessionReport c = End(Role::kClient, "ST\"ATE\x01");
  Publish("a", "a.10.1", {c});
  std::string json = FormatStatusJson(Collect(Now()));
  EXPECT_THAT(json, HasSubstr("\"state\": \"ST\\\"ATE\\u0001\""));
}

TEST(HumanBytesTest, Units) {
  EXPECT_EQ(HumanBytes(0), "0 B");
  EXPECT_EQ(HumanBytes(1023), "1023 B");
  EXPECT_EQ(HumanBytes(1024), "1.0 KiB");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(uint64_t{12} << 20), "12.0 MiB");
  EXPECT_EQ(HumanBytes(uint64_t{3} << 40), "3.0 TiB");
}

// --- The binary ---

class StatusBinaryTest : public StatusTest {
 protected:
  // Runs `diskwire status ARGS` with a clean environment; returns the exit
  // status and fills `*out` with stdout and stderr.
  int Run(const std::string& args, std::string* out,
          const std::string& prefix = "") {
    char cwd[4096];  // the runfiles tree
    EXPECT_NE(getcwd(cwd, sizeof cwd), nullptr);
    std::string cmd = absl::StrCat(prefix, "env -i ", cwd,
                                   "/cli/diskwire status ", args, " 2>&1");
    FILE* p = popen(cmd.c_str(), "r");
    char buf[4096];
    size_t n;
    out->clear();
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
    return WEXITSTATUS(pclose(p));
  }
};

TEST_F(StatusBinaryTest, JsonOfAVolume) {
  Publish("a", "a.10.1", {End(Role::kClient, "DIRECT")});
  std::string out;
  ASSERT_EQ(Run(absl::StrCat("--volume ", dir_.path(), " --json"), &out), 0)
      << out;
  EXPECT_THAT(out, HasSubstr("\"schema\": \"diskwire-status 1\""));
  EXPECT_THAT(out, HasSubstr(absl::StrCat("\"id\": \"", kSessionHex, "\"")));
  EXPECT_EQ(Run(absl::StrCat("--volume=", dir_.path()), &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("1 processes (1 alive"));
}

TEST_F(StatusBinaryTest, WatchRedrawsUntilInterrupted) {
  Publish("a", "a.10.1", {End(Role::kClient, "DIRECT")});
  std::string out;
  // Interrupted after 1.5 s, a 0.2 s period has drawn several times.
  EXPECT_EQ(Run(absl::StrCat("--volume ", dir_.path(), " --watch 0.2"), &out,
                "timeout -s INT 1.5 "),
            124);
  size_t draws = 0;
  for (size_t at = 0; (at = out.find("1 processes (", at)) != std::string::npos;
       ++at) {
    ++draws;
  }
  EXPECT_GE(draws, 3u) << out;
  EXPECT_EQ(Run(absl::StrCat("--volume ", dir_.path(), " --watch 0"), &out), 2);
  EXPECT_THAT(out, HasSubstr("--watch: \"0\" is not a number of seconds"));
}

TEST_F(StatusBinaryTest, UsageAndVolumeErrors) {
  std::string out;
  EXPECT_EQ(Run("", &out), 2);
  EXPECT_THAT(out, HasSubstr("no volume: give --volume V"));
  EXPECT_EQ(Run("--volume /x --max-lag-ms 1s", &out), 2);
  EXPECT_THAT(out, HasSubstr("--max-lag-ms"));
  EXPECT_EQ(Run("--volume /x --json 5", &out), 2);
  EXPECT_THAT(out, HasSubstr("unexpected argument 5"));
  EXPECT_EQ(Run(absl::StrCat("--volume ", dir_.path(), "/missing"), &out), 1);
  EXPECT_THAT(out, HasSubstr("missing: not a directory"));
  // Looking at an empty directory does not turn it into a volume.
  std::filesystem::create_directory(dir_.path() + "/empty");
  EXPECT_EQ(Run(absl::StrCat("--volume ", dir_.path(), "/empty"), &out), 1);
  EXPECT_THAT(out, HasSubstr("not a diskwire volume"));
  EXPECT_TRUE(std::filesystem::is_empty(dir_.path() + "/empty"));
}

}  // namespace
}  // namespace diskwire
