// The text and JSON renderings of a VolumeStatus (cli/status_command.h).

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "cli/status_command.h"

namespace diskwire {
namespace {

using Row = std::vector<std::string>;

// Left-aligned columns two spaces apart; trailing blanks trimmed.
std::string Table(const std::vector<Row>& rows) {
  std::vector<size_t> width;
  for (const Row& r : rows) {
    if (width.size() < r.size()) width.resize(r.size());
    for (size_t i = 0; i < r.size(); ++i) {
      width[i] = std::max(width[i], r[i].size());
    }
  }
  std::string out;
  for (const Row& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      absl::StrAppend(&line, r[i]);
      if (i + 1 < r.size()) line.append(width[i] - r[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string Ms(int64_t ms) { return ms < 0 ? "-" : absl::StrCat(ms, " ms"); }

std::string LagMs(int64_t us) {
  return us < 0 ? "-" : absl::StrFormat("%.1f", us / 1000.0);
}

std::string Age(int64_t ms) {
  if (ms < 0) return absl::StrFormat("%.1f s ahead", -ms / 1000.0);
  if (ms < 100'000) return absl::StrFormat("%.1f s ago", ms / 1000.0);
  return absl::StrFormat("%d min ago", ms / 60'000);
}

Row EndRow(const std::string& id, const char* role,
           const std::optional<SessionEnd>& end) {
  if (!end) return {id, role, "(no report on this volume)"};
  const SessionReport& r = end->report;
  const storage::Heartbeat& hb = end->process->heartbeat;
  std::string lag = r.lag_max_us < 0 ? "-"
                                     : absl::StrCat(LagMs(r.lag_p50_us), "/",
                                                    LagMs(r.lag_p99_us), "/",
                                                    LagMs(r.lag_max_us), " ms");
  return {
      id,
      role,
      absl::StrCat(hb.node, ":", hb.pid, end->process->alive ? "" : " (stale)"),
      r.state,
      absl::StrCat(r.local, " > ", r.remote),
      HumanBytes(r.bytes_out_network),
      HumanBytes(r.bytes_in_network),
      HumanBytes(r.bytes_out_storage),
      HumanBytes(r.bytes_in_storage),
      absl::StrCat(r.sent_offset, "/", r.delivered_offset, "/",
                   r.peer_ack_offset),
      Ms(r.failover_ms),
      lag};
}

// --- JSON ---

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      // Names come from files anyone may plant: escape all but printable
      // ASCII (non-UTF-8 bytes stay valid JSON as \u00XX).
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string IntOrNull(int64_t v) { return v < 0 ? "null" : absl::StrCat(v); }

std::string EndJson(const std::optional<SessionEnd>& end) {
  if (!end) return "null";
  const SessionReport& r = end->report;
  const storage::Heartbeat& hb = end->process->heartbeat;
  return absl::StrCat("{\"process_id\": ", Quote(hb.process_id),
                      ", \"node\": ", Quote(hb.node), ", \"pid\": ", hb.pid,
                      ", \"alive\": ", end->process->alive ? "true" : "false",
                      ", \"state\": ", Quote(r.state),
                      ", \"local\": ", Quote(r.local),
                      ", \"remote\": ", Quote(r.remote),
                      ", \"bytes_out_network\": ", r.bytes_out_network,
                      ", \"bytes_out_storage\": ", r.bytes_out_storage,
                      ", \"bytes_in_network\": ", r.bytes_in_network,
                      ", \"bytes_in_storage\": ", r.bytes_in_storage,
                      ", \"sent_offset\": ", r.sent_offset,
                      ", \"delivered_offset\": ", r.delivered_offset,
                      ", \"peer_ack_offset\": ", r.peer_ack_offset,
                      ", \"failover_ms\": ", IntOrNull(r.failover_ms),
                      ", \"lag_p50_us\": ", IntOrNull(r.lag_p50_us),
                      ", \"lag_p99_us\": ", IntOrNull(r.lag_p99_us),
                      ", \"lag_max_us\": ", IntOrNull(r.lag_max_us), "}");
}

}  // namespace

std::string HumanBytes(uint64_t bytes) {
  static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  double v = bytes / 1024.0;
  size_t unit = 0;
  while (v >= 1024 && unit + 1 < std::size(kUnits)) {
    v /= 1024;
    ++unit;
  }
  return absl::StrFormat("%.1f %s", v, kUnits[unit]);
}

std::string FormatStatusText(const VolumeStatus& s) {
  size_t alive = 0, over = 0;
  for (const ProcessStatus& p : s.processes) alive += p.alive;
  for (const SessionStatus& x : s.sessions) over += x.lag_over_max;
  std::string out = absl::StrCat(
      "volume ", s.volume, "  at ",
      absl::FormatTime("%Y-%m-%d %H:%M:%S UTC",
                       absl::FromUnixNanos(static_cast<int64_t>(s.now_ns)),
                       absl::UTCTimeZone()),
      "\n", s.processes.size(), " processes (", alive, " alive, ",
      s.processes.size() - alive, " stale: heartbeat older than ",
      s.limits.stale_after_ms, " ms), ", s.sessions.size(), " sessions (", over,
      " over max lag ", s.limits.max_lag_ms, " ms)\n");
  if (!s.processes.empty()) {
    std::vector<Row> rows = {{"NODE", "PID", "PROCESS", "HEARTBEAT", "", "SEQ",
                              "SESSIONS", "VERSION"}};
    for (const ProcessStatus& p : s.processes) {
      rows.push_back({p.heartbeat.node, absl::StrCat(p.heartbeat.pid),
                      p.heartbeat.process_id, Age(p.age_ms),
                      p.alive ? "alive" : "STALE",
                      absl::StrCat(p.heartbeat.sequence),
                      p.problem.empty() ? absl::StrCat(p.sessions) : "?",
                      p.version.empty() ? "-" : p.version});
    }
    absl::StrAppend(&out, "\n", Table(rows));
  }
  std::vector<Row> listening = {
      {"LISTENING", "NODE:PID", "", "HOST ADDRESSES"}};
  for (const ProcessStatus& p : s.processes) {
    for (const std::string& l : p.listeners) {
      listening.push_back({l,
                           absl::StrCat(p.heartbeat.node, ":", p.heartbeat.pid),
                           p.alive ? "covered" : "STALE", p.addresses});
    }
  }
  if (listening.size() > 1) absl::StrAppend(&out, "\n", Table(listening));
  std::vector<Row> udp = {{"UDP RECEIVING", "NODE:PID", "", "DATAGRAMS OUT",
                           "IN (VIA VOLUME)", "DROPPED"}};
  for (const ProcessStatus& p : s.processes) {
    if (p.udp.tag.empty()) continue;
    udp.push_back(
        {p.udp.receivers.empty() ? "-" : absl::StrJoin(p.udp.receivers, ","),
         absl::StrCat(p.heartbeat.node, ":", p.heartbeat.pid),
         p.alive ? "covered" : "STALE", absl::StrCat(p.udp.out_storage),
         absl::StrCat(p.udp.in_storage), absl::StrCat(p.udp.dropped)});
  }
  if (udp.size() > 1) absl::StrAppend(&out, "\n", Table(udp));
  if (!s.sessions.empty()) {
    std::vector<Row> rows = {{"SESSION", "ROLE", "NODE:PID", "STATE",
                              "LOCAL > REMOTE", "NET OUT", "NET IN", "STO OUT",
                              "STO IN", "SENT/DELIV/PEER-ACK", "FAILOVER",
                              "LAG P50/P99/MAX"}};
    for (const SessionStatus& x : s.sessions) {
      Row c = EndRow(x.id.substr(0, 12), "client", x.client);
      Row v = EndRow("", "server", x.server);
      if (x.lag_over_max) {
        c.resize(12);
        c.push_back(absl::StrCat("LAG OVER ", s.limits.max_lag_ms, " ms"));
      }
      rows.push_back(std::move(c));
      rows.push_back(std::move(v));
    }
    absl::StrAppend(&out, "\n", Table(rows));
  }
  if (!s.mirrors.empty()) {
    std::vector<Row> rows = {{"MIRROR", "FROM > TO", "UPDATED", "", "RECORDS",
                              "BYTES", "CHANNELS", "LAG P50/P99/MAX"}};
    for (const MirrorStatus& m : s.mirrors) {
      Row r = {m.name,
               absl::StrCat(m.from, " > ", m.to),
               Age(m.age_ms),
               m.stale ? "STALE" : "ok",
               absl::StrCat(m.records),
               HumanBytes(m.bytes),
               m.channels_in_error == 0
                   ? absl::StrCat(m.channels)
                   : absl::StrCat(m.channels, " (", m.channels_in_error,
                                  " stopped)"),
               absl::StrCat(LagMs(m.lag_p50_us), "/", LagMs(m.lag_p99_us), "/",
                            LagMs(m.lag_max_us), " ms")};
      if (m.lag_over_max) {
        r.push_back(absl::StrCat("LAG OVER ", s.limits.max_lag_ms, " ms"));
      }
      rows.push_back(std::move(r));
    }
    absl::StrAppend(&out, "\nmirrors:\n", Table(rows));
  }
  if (!s.problems.empty()) {
    absl::StrAppend(&out, "\nproblems on the volume:\n");
    for (const std::string& p : s.problems)
      absl::StrAppend(&out, "  ", p, "\n");
  }
  return out;
}

std::string FormatStatusJson(const VolumeStatus& s) {
  std::vector<std::string> processes, sessions, mirrors, problems;
  for (const ProcessStatus& p : s.processes) {
    processes.push_back(absl::StrCat(
        "{\"process_id\": ", Quote(p.heartbeat.process_id),
        ", \"node\": ", Quote(p.heartbeat.node), ", \"pid\": ", p.heartbeat.pid,
        ", \"heartbeat_time_ns\": ", p.heartbeat.time_ns,
        ", \"heartbeat_age_ms\": ", p.age_ms,
        ", \"sequence\": ", p.heartbeat.sequence,
        ", \"alive\": ", p.alive ? "true" : "false", ", \"listening\": [",
        absl::StrJoin(p.listeners, ", ",
                      [](std::string* out, const std::string& l) {
                        out->append(Quote(l));
                      }),
        "], \"udp\": ",
        p.udp.tag.empty()
            ? std::string("null")
            : absl::StrCat(
                  "{\"receiving\": [",
                  absl::StrJoin(p.udp.receivers, ", ",
                                [](std::string* out, const std::string& l) {
                                  out->append(Quote(l));
                                }),
                  "], \"out_storage\": ", p.udp.out_storage,
                  ", \"in_storage\": ", p.udp.in_storage,
                  ", \"dropped\": ", p.udp.dropped, "}"),
        ", \"addresses\": ", Quote(p.addresses), ", \"version\": ",
        p.version.empty() ? "null" : Quote(p.version), ", \"sessions\": ",
        p.problem.empty() ? absl::StrCat(p.sessions) : "null",
        ", \"problem\": ", p.problem.empty() ? "null" : Quote(p.problem), "}"));
  }
  for (const SessionStatus& x : s.sessions) {
    sessions.push_back(absl::StrCat(
        "{\"id\": ", Quote(x.id), ", \"state\": ", Quote(x.state),
        ", \"bytes_network\": ", x.bytes_network, ", \"bytes_storage\": ",
        x.bytes_storage, ", \"failover_ms\": ", IntOrNull(x.failover_ms),
        ", \"lag_p50_us\": ", IntOrNull(x.lag_p50_us), ", \"lag_p99_us\": ",
        IntOrNull(x.lag_p99_us), ", \"lag_max_us\": ", IntOrNull(x.lag_max_us),
        ", \"lag_over_max\": ", x.lag_over_max ? "true" : "false",
        ",\n     \"client\": ", EndJson(x.client),
        ",\n     \"server\": ", EndJson(x.server), "}"));
  }
  for (const MirrorStatus& m : s.mirrors) {
    mirrors.push_back(absl::StrCat(
        "{\"name\": ", Quote(m.name), ", \"from\": ", Quote(m.from),
        ", \"to\": ", Quote(m.to), ", \"updated_ns\": ", m.updated_ns,
        ", \"age_ms\": ", m.age_ms, ", \"stale\": ", m.stale ? "true" : "false",
        ", \"records\": ", m.records, ", \"bytes\": ", m.bytes,
        ", \"channels\": ", m.channels,
        ", \"channels_in_error\": ", m.channels_in_error,
        ", \"samples\": ", m.samples, ", \"lag_p50_us\": ", m.lag_p50_us,
        ", \"lag_p99_us\": ", m.lag_p99_us, ", \"lag_max_us\": ", m.lag_max_us,
        ", \"lag_over_max\": ", m.lag_over_max ? "true" : "false", "}"));
  }
  for (const std::string& p : s.problems) problems.push_back(Quote(p));
  return absl::StrCat(
      "{\"schema\": \"diskwire-status 1\", \"volume\": ", Quote(s.volume),
      ", \"time_ns\": ", s.now_ns,
      ", \"stale_after_ms\": ", s.limits.stale_after_ms,
      ", \"max_lag_ms\": ", s.limits.max_lag_ms, ",\n \"processes\": [",
      absl::StrJoin(processes, ",\n  "), "],\n \"sessions\": [",
      absl::StrJoin(sessions, ",\n  "), "],\n \"mirrors\": [",
      absl::StrJoin(mirrors, ",\n  "), "],\n \"problems\": [",
      absl::StrJoin(problems, ",\n  "), "]}\n");
}

}  // namespace diskwire
