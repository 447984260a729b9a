// Reading `diskwire mirror`'s status files (cli/status_command.h): the format
// is storage::MirrorStatusText (storage/mirror_lag.h, docs/REPLICATION.md).

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/status_command.h"
#include "storage/mirror_lag.h"

namespace diskwire {
namespace {

constexpr size_t kMaxMirrorStatusBytes = 1 << 20;

// Milliseconds with decimals ("0.412") as microseconds.
bool ParseLagUs(absl::string_view v, int64_t* us) {
  double ms;
  if (!absl::SimpleAtod(v, &ms) || !(ms >= 0) || ms > 1e12) return false;
  *us = std::llround(ms * 1000);
  return true;
}

// A status file's text (storage::MirrorStatusText) named `name`.status into
// `m`; the mirror's own channel errors and problems go to `notes`. Unknown
// keys are skipped (newer mirrors may add some).
absl::Status ParseMirrorStatus(const std::string& text, const std::string& name,
                               MirrorStatus* m,
                               std::vector<std::string>* notes) {
  if (!absl::StartsWith(text, "mirror ")) {
    return absl::DataLossError("not a mirror status file (foreign)");
  }
  if (!absl::EndsWith(text, "\n")) return absl::DataLossError("truncated");
  bool has_time = false, has_lag = false;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(line, absl::MaxSplits(' ', 1));
    auto [key, rest] = kv;
    bool ok = true;
    if (key == "mirror") {
      m->name = std::string(rest);
      if (m->name != name) {
        return absl::DataLossError(
            absl::StrCat("names mirror \"", rest, "\", not \"", name, "\""));
      }
    } else if (key == "from") {
      m->from = std::string(rest);
    } else if (key == "to") {
      m->to = std::string(rest);
    } else if (key == "updated_ns") {
      ok = has_time = absl::SimpleAtoi(rest, &m->updated_ns);
    } else if (key == "records") {
      ok = absl::SimpleAtoi(rest, &m->records);
    } else if (key == "bytes") {
      ok = absl::SimpleAtoi(rest, &m->bytes);
    } else if (key == "lag_ms") {
      std::vector<absl::string_view> w = absl::StrSplit(rest, ' ');
      ok = has_lag = w.size() == 8 && w[0] == "p50" && w[2] == "p99" &&
                     w[4] == "max" && w[6] == "samples" &&
                     ParseLagUs(w[1], &m->lag_p50_us) &&
                     ParseLagUs(w[3], &m->lag_p99_us) &&
                     ParseLagUs(w[5], &m->lag_max_us) &&
                     absl::SimpleAtoi(w[7], &m->samples);
    } else if (key == "channel") {
      size_t at = rest.find(" state ");
      ok = at != absl::string_view::npos;
      if (!ok) break;
      ++m->channels;
      absl::string_view state = rest.substr(at + 7);
      if (state != "ok") {
        ++m->channels_in_error;
        notes->push_back(absl::StrCat(
            "channel ", rest.substr(0, rest.find(' ')), ": ", state));
      }
    } else if (key == "problem") {
      notes->push_back(std::string(rest));
    }
    if (!ok) {
      return absl::DataLossError(
          absl::StrCat("corrupt line \"", line.substr(0, 80), "\""));
    }
  }
  if (!has_time || !has_lag) {
    return absl::DataLossError(absl::StrCat(
        "incomplete: no ", has_time ? "lag_ms" : "updated_ns", " line"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  // O_NOFOLLOW: a link planted in the volume is never followed.
  const int fd =
      open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, "cannot open");
  FILE* f = fdopen(fd, "rb");
  if (f == nullptr) {
    close(fd);
    return absl::ErrnoToStatus(errno, "cannot open");
  }
  std::string text(kMaxMirrorStatusBytes + 1, '\0');
  text.resize(std::fread(text.data(), 1, text.size(), f));
  const bool failed = std::ferror(f);
  std::fclose(f);
  if (failed) return absl::DataLossError("read error");
  if (text.size() > kMaxMirrorStatusBytes) {
    return absl::DataLossError("larger than 1 MiB: not a mirror status file");
  }
  return text;
}

// One status text (`text`, or why it could not be read) of mirror `name`
// into out->mirrors, or into out->problems prefixed by `where`.
void AddMirrorStatus(const std::string& name,
                     const absl::StatusOr<std::string>& text,
                     const std::string& where, const StatusLimits& limits,
                     VolumeStatus* out) {
  MirrorStatus m;
  std::vector<std::string> notes;
  absl::Status parsed =
      text.ok() ? ParseMirrorStatus(*text, name, &m, &notes) : text.status();
  if (!parsed.ok()) {
    out->problems.push_back(where + std::string(parsed.message()));
    return;
  }
  for (const std::string& note : notes) out->problems.push_back(where + note);
  m.age_ms =
      (static_cast<int64_t>(out->now_ns) - static_cast<int64_t>(m.updated_ns)) /
      1'000'000;
  m.stale = m.age_ms > limits.mirror_stale_after_ms;
  m.lag_over_max = m.lag_max_us > limits.max_lag_ms * 1000;
  out->mirrors.push_back(std::move(m));
}

// A LUN has no files: a mirror writing to it keeps its status in a channel
// (storage::MirrorStatusChannel).
void CollectMirrorChannels(storage::Volume& volume, const StatusLimits& limits,
                           VolumeStatus* out) {
  absl::StatusOr<std::vector<std::string>> channels = volume.ListChannels();
  if (!channels.ok()) {
    out->problems.push_back(
        absl::StrCat("cannot list channels: ", channels.status().message()));
    return;
  }
  for (const std::string& channel : *channels) {
    std::optional<std::string> name =
        storage::MirrorNameOfStatusChannel(channel);
    if (!name) continue;
    absl::StatusOr<std::string> text =
        storage::ReadMirrorStatusRecord(volume, *name);
    if (absl::IsNotFound(text.status())) continue;  // removed meanwhile
    AddMirrorStatus(*name, text, absl::StrCat("channel ", channel, ": "),
                    limits, out);
  }
}

}  // namespace

// `volume_path`/mirror/*.status into out->mirrors (by name); anything else
// there that is not a directory, or does not parse, into out->problems.
void CollectMirrorStatus(const std::string& volume_path,
                         storage::Volume& volume, const StatusLimits& limits,
                         VolumeStatus* out) {
  const std::string dir = volume_path + "/mirror";
  const int dir_fd =
      open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  DIR* d = dir_fd >= 0 ? fdopendir(dir_fd) : nullptr;
  const int err = errno;
  if (d == nullptr && dir_fd >= 0) close(dir_fd);
  if (d == nullptr) {
    if (err == ENOTDIR) {
      CollectMirrorChannels(volume, limits, out);  // a LUN
    } else if (err != ENOENT) {
      out->problems.push_back(
          absl::StrCat("mirror/: cannot list: ", std::strerror(err)));
    }
    return;
  }
  std::vector<std::string> names;
  while (const dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') names.push_back(e->d_name);  // skips .tmp-*
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    struct stat st;
    // Vanished since listed, or requests/ and done/ (on a source volume).
    if (stat((dir + "/" + n).c_str(), &st) != 0 || S_ISDIR(st.st_mode)) {
      continue;
    }
    const std::string where = absl::StrCat("mirror/", n, ": ");
    if (!absl::EndsWith(n, ".status")) {
      out->problems.push_back(where + "not a mirror status file (foreign)");
      continue;
    }
    AddMirrorStatus(n.substr(0, n.size() - 7), ReadSmallFile(dir + "/" + n),
                    where, limits, out);
  }
}

}  // namespace diskwire
