// `diskwire status --format prometheus`: the picture of a volume as gauges in
// the Prometheus text exposition format (version 0.0.4). Every value comes
// from the volume alone (heartbeats, mirror status files, statvfs), so one
// collector on any host that mounts the volume sees the whole cluster.

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/status_command.h"

namespace diskwire {
namespace {

// A label value, escaped as the format wants.
std::string Label(absl::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

class Exposition {
 public:
  // Starts a metric family: its HELP and TYPE lines.
  void Family(absl::string_view name, absl::string_view help) {
    absl::StrAppend(&text_, "# HELP ", name, " ", help, "\n# TYPE ", name,
                    " gauge\n");
  }
  // One sample; `labels` already formatted ("a=\"x\",b=\"y\"") or empty.
  // Counts and bytes are exact integers; seconds have microseconds.
  void Sample(absl::string_view name, absl::string_view labels, int64_t value) {
    Line(name, labels, absl::StrCat(value));
  }
  void Seconds(absl::string_view name, absl::string_view labels, double value) {
    Line(name, labels, absl::StrFormat("%.6f", value));
  }
  std::string Take() { return std::move(text_); }

 private:
  void Line(absl::string_view name, absl::string_view labels,
            absl::string_view value) {
    absl::StrAppend(&text_, name, labels.empty() ? "" : "{", labels,
                    labels.empty() ? "" : "}", " ", value, "\n");
  }

  std::string text_;
};

}  // namespace

std::string FormatStatusPrometheus(const VolumeStatus& s) {
  Exposition e;
  const std::string volume = absl::StrCat("volume=\"", Label(s.volume), "\"");
  auto with = [&](absl::string_view more) {
    return absl::StrCat(volume, ",", more);
  };

  e.Family("diskwire_processes", "Processes with a heartbeat on the volume.");
  size_t alive = 0;
  for (const ProcessStatus& p : s.processes) alive += p.alive ? 1 : 0;
  e.Sample("diskwire_processes", with("state=\"alive\""),
           static_cast<int64_t>(alive));
  e.Sample("diskwire_processes", with("state=\"stale\""),
           static_cast<int64_t>(s.processes.size() - alive));

  e.Family("diskwire_process_heartbeat_age_seconds",
           "Age of each process's last heartbeat (peer liveness).");
  for (const ProcessStatus& p : s.processes) {
    e.Sample(
        "diskwire_process_heartbeat_age_seconds",
        with(absl::StrCat("node=\"", Label(p.heartbeat.node), "\",process=\"",
                          Label(p.heartbeat.process_id), "\"")),
        p.age_ms / 1000.0);
  }

  e.Family("diskwire_records_rejected",
           "Records and messages each process read from the volume and "
           "refused (checksum, MAC, foreign, misplaced): never delivered.");
  for (const ProcessStatus& p : s.processes) {
    e.Sample(
        "diskwire_records_rejected",
        with(absl::StrCat("node=\"", Label(p.heartbeat.node), "\",process=\"",
                          Label(p.heartbeat.process_id), "\"")),
        static_cast<int64_t>(p.rejected_records));
  }

  e.Family("diskwire_sessions", "Sessions by state (both ends agreeing).");
  std::map<std::string, size_t> by_state;
  for (const SessionStatus& x : s.sessions) ++by_state[x.state];
  for (const auto& [state, n] : by_state) {
    e.Sample("diskwire_sessions",
             with(absl::StrCat("state=\"", Label(state), "\"")),
             static_cast<int64_t>(n));
  }

  e.Family("diskwire_sessions_failed_over",
           "Sessions that have moved to the storage path at least once.");
  e.Family("diskwire_resumes",
           "Times the sessions on the volume went back to the network.");
  e.Family("diskwire_session_bytes",
           "Stream bytes the current sessions carried, by path.");
  size_t failed_over = 0;
  uint64_t resumes = 0, network = 0, storage = 0;
  for (const SessionStatus& x : s.sessions) {
    failed_over += x.failover_ms >= 0 ? 1 : 0;
    resumes += x.resumes;
    network += x.bytes_network;
    storage += x.bytes_storage;
  }
  e.Sample("diskwire_sessions_failed_over", volume,
           static_cast<int64_t>(failed_over));
  e.Sample("diskwire_resumes", volume, static_cast<int64_t>(resumes));
  e.Sample("diskwire_session_bytes", with("path=\"network\""),
           static_cast<int64_t>(network));
  e.Sample("diskwire_session_bytes", with("path=\"storage\""),
           static_cast<int64_t>(storage));

  e.Family(
      "diskwire_failover_seconds",
      "From the detected cut to the first byte over storage, per session.");
  e.Family("diskwire_storage_lag_seconds",
           "Storage-path latency of received records, per session.");
  for (const SessionStatus& x : s.sessions) {
    const std::string session = absl::StrCat("session=\"", x.id, "\"");
    if (x.failover_ms >= 0) {
      e.Seconds("diskwire_failover_seconds", with(session),
                x.failover_ms / 1000.0);
    }
    if (x.lag_max_us < 0) continue;
    for (const auto& [q, us] :
         {std::pair("0.5", x.lag_p50_us), std::pair("0.99", x.lag_p99_us),
          std::pair("1", x.lag_max_us)}) {
      e.Seconds("diskwire_storage_lag_seconds",
                with(absl::StrCat(session, ",quantile=\"", q, "\"")), us / 1e6);
    }
  }

  e.Family("diskwire_mirror_lag_seconds",
           "Write-to-copy latency of each diskwire mirror into this volume.");
  e.Family("diskwire_mirror_stale",
           "1 when a mirror's status file stopped changing.");
  for (const MirrorStatus& m : s.mirrors) {
    const std::string mirror = absl::StrCat("mirror=\"", Label(m.name), "\"");
    for (const auto& [q, us] :
         {std::pair("0.5", m.lag_p50_us), std::pair("0.99", m.lag_p99_us),
          std::pair("1", m.lag_max_us)}) {
      e.Seconds("diskwire_mirror_lag_seconds",
                with(absl::StrCat(mirror, ",quantile=\"", q, "\"")), us / 1e6);
    }
    e.Sample("diskwire_mirror_stale", with(mirror), m.stale ? 1 : 0);
  }

  if (s.volume_size_bytes >= 0) {
    e.Family("diskwire_volume_free_bytes",
             "Space left for unprivileged writers on the volume's filesystem.");
    e.Sample("diskwire_volume_free_bytes", volume, s.volume_free_bytes);
    e.Family("diskwire_volume_size_bytes", "Size of that filesystem.");
    e.Sample("diskwire_volume_size_bytes", volume, s.volume_size_bytes);
  }
  e.Family("diskwire_volume_problems",
           "Problems diskwire status lists: foreign or corrupt files, full "
           "volumes, differing versions.");
  e.Sample("diskwire_volume_problems", volume,
           static_cast<int64_t>(s.problems.size()));
  return e.Take();
}

}  // namespace diskwire
