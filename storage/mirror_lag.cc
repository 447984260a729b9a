#include "storage/mirror_lag.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "base/status_macros.h"

namespace diskwire::storage {
namespace {

std::string Millis(int64_t ns) {
  return absl::StrFormat("%.3f", static_cast<double>(ns) / 1e6);
}

std::string LagText(const LagSummary& s) {
  return absl::StrCat("lag_ms p50 ", Millis(s.p50_ns), " p99 ",
                      Millis(s.p99_ns), " max ", Millis(s.max_ns), " samples ",
                      s.samples);
}

}  // namespace

void LagStats::Add(const std::string& channel, int64_t lag_ns) {
  Window& w = windows_[channel];
  lag_ns = std::max<int64_t>(lag_ns, 0);
  if (w.samples.size() < window_) {
    w.samples.push_back(lag_ns);
  } else {
    w.samples[w.next] = lag_ns;
    w.next = (w.next + 1) % window_;
  }
}

LagSummary LagStats::Summarise(std::vector<int64_t> samples) {
  LagSummary s;
  s.samples = samples.size();
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(q * (samples.size() - 1) + 0.5);
    return samples[std::min(i, samples.size() - 1)];
  };
  s.p50_ns = at(0.50);
  s.p99_ns = at(0.99);
  s.max_ns = samples.back();
  return s;
}

LagSummary LagStats::Channel(const std::string& channel) const {
  auto it = windows_.find(channel);
  if (it == windows_.end()) return LagSummary{};
  return Summarise(it->second.samples);
}

LagSummary LagStats::Overall() const {
  std::vector<int64_t> all;
  for (const auto& [name, w] : windows_) {
    all.insert(all.end(), w.samples.begin(), w.samples.end());
  }
  return Summarise(std::move(all));
}

std::vector<std::string> LagStats::Channels() const {
  std::vector<std::string> names;
  for (const auto& [name, w] : windows_) names.push_back(name);
  return names;
}

std::string MirrorStatusText(const MirrorStatusInfo& info,
                             const LagStats& lag) {
  std::string text = absl::StrCat(
      "mirror ", info.name, "\nfrom ", info.from, "\nto ", info.to,
      "\nupdated_ns ", info.now_ns, "\nrecords ", info.records, "\nbytes ",
      info.bytes, "\ntarget_full_retries ", info.target_full_retries, "\n",
      LagText(lag.Overall()), "\n");
  std::vector<std::string> names = lag.Channels();
  for (const auto& [name, error] : info.channel_errors) {
    if (!std::count(names.begin(), names.end(), name)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    auto err = info.channel_errors.find(name);
    absl::StrAppend(
        &text, "channel ", name, " ", LagText(lag.Channel(name)), " state ",
        err == info.channel_errors.end() ? std::string("ok")
                                         : absl::StrCat("error: ", err->second),
        "\n");
  }
  for (const std::string& p : info.problems) {
    absl::StrAppend(&text, "problem ", p, "\n");
  }
  return text;
}

std::string MirrorStatusChannel(const std::string& name) {
  return absl::StrCat("mirror.", name, ".status");
}

std::optional<std::string> MirrorNameOfStatusChannel(
    const std::string& channel) {
  absl::string_view n = channel;
  if (!absl::ConsumePrefix(&n, "mirror.") ||
      !absl::ConsumeSuffix(&n, ".status") || n.empty()) {
    return std::nullopt;
  }
  return std::string(n);
}

absl::StatusOr<std::string> ReadMirrorStatusRecord(Volume& volume,
                                                   const std::string& name) {
  const std::string channel = MirrorStatusChannel(name);
  DW_ASSIGN_OR_RETURN(ChannelStat stat, volume.StatChannel(channel));
  DW_ASSIGN_OR_RETURN(std::unique_ptr<ChannelReader> reader,
                      volume.OpenReader(channel, stat.trimmed_below));
  std::optional<std::string> newest;
  std::vector<Record> records;
  while (true) {
    records.clear();
    DW_ASSIGN_OR_RETURN(size_t n, reader->ReadAvailable(&records, 1 << 20));
    if (n == 0) break;
    newest = std::move(records.back().payload);
  }
  if (!newest) {
    return absl::NotFoundError(absl::StrCat("channel ", channel, " is empty"));
  }
  return *newest;
}

}  // namespace diskwire::storage
