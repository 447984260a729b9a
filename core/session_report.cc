#include "core/session_report.h"

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/listeners.h"

namespace diskwire {
namespace {

constexpr absl::string_view kMagicLine = "diskwire-sessions 1";

template <typename Int>
bool ParseInt(absl::string_view text, Int* out) {
  if constexpr (std::is_signed_v<Int>) {
    int64_t v;
    if (!absl::SimpleAtoi(text, &v)) return false;
    *out = v;
  } else {
    uint64_t v;
    if (!absl::SimpleAtoi(text, &v)) return false;
    *out = v;
  }
  return true;
}

absl::Status ApplyField(absl::string_view key, absl::string_view value,
                        SessionReport* s) {
  bool ok = true;
  if (key == "role") {
    if (value == "client") {
      s->role = Role::kClient;
    } else if (value == "server") {
      s->role = Role::kServer;
    } else {
      ok = false;
    }
  } else if (key == "state") {
    s->state = std::string(value);
  } else if (key == "local") {
    s->local = std::string(value);
  } else if (key == "remote") {
    s->remote = std::string(value);
  } else if (key == "out_net") {
    ok = ParseInt(value, &s->bytes_out_network);
  } else if (key == "out_sto") {
    ok = ParseInt(value, &s->bytes_out_storage);
  } else if (key == "in_net") {
    ok = ParseInt(value, &s->bytes_in_network);
  } else if (key == "in_sto") {
    ok = ParseInt(value, &s->bytes_in_storage);
  } else if (key == "sent") {
    ok = ParseInt(value, &s->sent_offset);
  } else if (key == "delivered") {
    ok = ParseInt(value, &s->delivered_offset);
  } else if (key == "peer_ack") {
    ok = ParseInt(value, &s->peer_ack_offset);
  } else if (key == "failover_ms") {
    ok = ParseInt(value, &s->failover_ms);
  } else if (key == "lag_p50_us") {
    ok = ParseInt(value, &s->lag_p50_us);
  } else if (key == "lag_p99_us") {
    ok = ParseInt(value, &s->lag_p99_us);
  } else if (key == "lag_max_us") {
    ok = ParseInt(value, &s->lag_max_us);
  } else if (key == "claim") {
    ok = ParseInt(value, &s->claim_ns);
  } else if (key == "problem") {
    s->problem = std::string(value);
  } else if (key == "resumes") {
    ok = ParseInt(value, &s->resumes);
  }  // Unknown keys come from newer writers: skipped.
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad value \"", value, "\" for ", key));
  }
  return absl::OkStatus();
}

}  // namespace

std::string EncodeProcessReport(const ProcessReport& report) {
  std::string out = absl::StrCat(kMagicLine, "\n");
  if (report.resume_port != 0 || !report.host.empty() ||
      !report.addresses.empty() || !report.version.empty() ||
      report.rejected_records > 0) {
    absl::StrAppend(&out, "process resume_port=", report.resume_port,
                    " nonce=", absl::BytesToHexString(report.resume_nonce));
    if (!report.host.empty()) absl::StrAppend(&out, " host=", report.host);
    if (!report.addresses.empty())
      absl::StrAppend(&out, " addrs=", report.addresses);
    if (!report.version.empty())
      absl::StrAppend(&out, " version=", report.version);
    if (report.rejected_records > 0)
      absl::StrAppend(&out, " rejected=", report.rejected_records);
    absl::StrAppend(&out, "\n");
  }
  for (const std::string& listener : report.listeners)
    absl::StrAppend(&out, "listen ", listener, "\n");
  if (!report.udp.tag.empty()) {
    absl::StrAppend(
        &out, "udp tag=", report.udp.tag, " probe_port=", report.udp.probe_port,
        " out_sto=", report.udp.out_storage, " in_sto=", report.udp.in_storage,
        " dropped=", report.udp.dropped, "\n");
  }
  for (const std::string& receiver : report.udp.receivers)
    absl::StrAppend(&out, "udp_receiver ", receiver, "\n");
  for (const SessionReport& s : report.sessions) {
    absl::StrAppend(&out, "session ", SessionIdHex(s.id),
                    " role=", s.role == Role::kClient ? "client" : "server",
                    " state=", s.state, " local=", s.local,
                    " remote=", s.remote);
    absl::StrAppend(&out, " out_net=", s.bytes_out_network,
                    " out_sto=", s.bytes_out_storage,
                    " in_net=", s.bytes_in_network,
                    " in_sto=", s.bytes_in_storage);
    absl::StrAppend(
        &out, " sent=", s.sent_offset, " delivered=", s.delivered_offset,
        " peer_ack=", s.peer_ack_offset, " failover_ms=", s.failover_ms);
    absl::StrAppend(&out, " lag_p50_us=", s.lag_p50_us,
                    " lag_p99_us=", s.lag_p99_us, " lag_max_us=", s.lag_max_us,
                    " claim=", s.claim_ns);
    if (s.resumes > 0) absl::StrAppend(&out, " resumes=", s.resumes);
    if (!s.problem.empty()) absl::StrAppend(&out, " problem=", s.problem);
    absl::StrAppend(&out, "\n");
  }
  return out;
}

absl::StatusOr<ProcessReport> DecodeProcessReport(absl::string_view payload) {
  std::vector<absl::string_view> lines =
      absl::StrSplit(payload, '\n', absl::SkipEmpty());
  if (lines.empty() || lines[0] != kMagicLine) {
    return absl::InvalidArgumentError(
        "session report does not start with \"diskwire-sessions 1\"");
  }
  ProcessReport report;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<absl::string_view> words =
        absl::StrSplit(lines[i], ' ', absl::SkipEmpty());
    if (!words.empty() && words[0] == "process") {
      for (size_t w = 1; w < words.size(); ++w) {
        std::pair<absl::string_view, absl::string_view> kv =
            absl::StrSplit(words[w], '=');
        bool ok = true;
        if (kv.first == "resume_port") {
          uint32_t port = 0;
          ok = absl::SimpleAtoi(kv.second, &port) && port <= 65535;
          report.resume_port = static_cast<uint16_t>(port);
        } else if (kv.first == "nonce") {
          ok = kv.second.size() % 2 == 0 &&
               kv.second.find_first_not_of("0123456789abcdef") ==
                   absl::string_view::npos;
          if (ok) report.resume_nonce = absl::HexStringToBytes(kv.second);
        } else if (kv.first == "host") {
          report.host = std::string(kv.second);
        } else if (kv.first == "addrs") {
          report.addresses = std::string(kv.second);
        } else if (kv.first == "version") {
          report.version = std::string(kv.second);
        } else if (kv.first == "rejected") {
          ok = absl::SimpleAtoi(kv.second, &report.rejected_records);
        }
        if (!ok) {
          return absl::InvalidArgumentError(
              absl::StrCat("session report line ", i + 1, ": bad value \"",
                           kv.second, "\" for ", kv.first));
        }
      }
      continue;
    }
    if (!words.empty() && words[0] == "listen") {
      if (words.size() < 2 || !ParseListenAddress(words[1]).ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "session report line ", i + 1, ": bad listening address \"",
            words.size() < 2 ? "" : words[1], "\""));
      }
      report.listeners.emplace_back(words[1]);
      continue;
    }
    if (!words.empty() && words[0] == "udp") {
      for (size_t w = 1; w < words.size(); ++w) {
        std::pair<absl::string_view, absl::string_view> kv =
            absl::StrSplit(words[w], '=');
        bool ok = true;
        if (kv.first == "tag") {
          ok = kv.second.size() == 16 &&
               kv.second.find_first_not_of("0123456789abcdef") ==
                   absl::string_view::npos;
          report.udp.tag = std::string(kv.second);
        } else if (kv.first == "probe_port") {
          uint32_t port = 0;
          ok = absl::SimpleAtoi(kv.second, &port) && port <= 65535;
          report.udp.probe_port = static_cast<uint16_t>(port);
        } else if (kv.first == "out_sto") {
          ok = absl::SimpleAtoi(kv.second, &report.udp.out_storage);
        } else if (kv.first == "in_sto") {
          ok = absl::SimpleAtoi(kv.second, &report.udp.in_storage);
        } else if (kv.first == "dropped") {
          ok = absl::SimpleAtoi(kv.second, &report.udp.dropped);
        }
        if (!ok) {
          return absl::InvalidArgumentError(
              absl::StrCat("session report line ", i + 1, ": bad value \"",
                           kv.second, "\" for ", kv.first));
        }
      }
      continue;
    }
    if (!words.empty() && words[0] == "udp_receiver") {
      if (words.size() < 2 || !ParseListenAddress(words[1]).ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "session report line ", i + 1, ": bad UDP receiver address \"",
            words.size() < 2 ? "" : words[1], "\""));
      }
      report.udp.receivers.emplace_back(words[1]);
      continue;
    }
    if (words.size() < 2 || words[0] != "session")
      continue;  // A newer writer's line kind.
    SessionReport s;
    auto id = ParseSessionIdHex(words[1]);
    if (!id.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "session report line ", i + 1, ": ", id.status().message()));
    }
    s.id = *id;
    for (size_t w = 2; w < words.size(); ++w) {
      std::pair<absl::string_view, absl::string_view> kv =
          absl::StrSplit(words[w], '=');
      absl::Status st = ApplyField(kv.first, kv.second, &s);
      if (!st.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("session report line ", i + 1, ": ", st.message()));
      }
    }
    report.sessions.push_back(std::move(s));
  }
  return report;
}

}  // namespace diskwire
