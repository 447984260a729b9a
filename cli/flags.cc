#include "cli/flags.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace diskwire {
namespace {

size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1,
                         diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

absl::Status UnknownFlag(absl::string_view name,
                         absl::Span<const FlagSpec> specs) {
  const char* best = nullptr;
  size_t best_distance = 3;  // At most two edits is a typo.
  for (const FlagSpec& s : specs) {
    size_t d = EditDistance(name, s.name);
    if (d < best_distance) {
      best = s.name;
      best_distance = d;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown flag --", name,
      best != nullptr ? absl::StrCat(" (did you mean --", best, "?)") : ""));
}

}  // namespace

bool ParsedFlags::Has(const std::string& name) const {
  return Get(name).has_value();
}

std::optional<std::string> ParsedFlags::Get(const std::string& name) const {
  for (const auto& [n, v] : flags) {
    if (n == name) return v;
  }
  return std::nullopt;
}

absl::StatusOr<ParsedFlags> ParseFlags(absl::Span<const std::string> args,
                                       absl::Span<const FlagSpec> specs) {
  ParsedFlags out;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (!absl::StartsWith(arg, "-") || arg == "-") break;
    if (!absl::StartsWith(arg, "--")) {
      auto spec =
          std::find_if(specs.begin(), specs.end(), [&](const FlagSpec& s) {
            return arg.size() == 2 && s.short_name != 0 &&
                   arg[1] == s.short_name && !s.takes_value;
          });
      if (spec == specs.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "unknown option ", arg, " (flags are long: --name VALUE)"));
      }
      if (out.Has(spec->name)) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", spec->name, " given twice"));
      }
      out.flags.emplace_back(spec->name, "true");
      continue;
    }
    absl::string_view body = arg.substr(2);
    std::optional<std::string> inline_value;
    if (size_t eq = body.find('='); eq != absl::string_view::npos) {
      inline_value = std::string(body.substr(eq + 1));
      body = body.substr(0, eq);
    }
    auto spec = std::find_if(specs.begin(), specs.end(),
                             [&](const FlagSpec& s) { return body == s.name; });
    if (spec == specs.end()) return UnknownFlag(body, specs);
    std::string name(body);
    if (out.Has(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("flag --", name, " given twice"));
    }
    if (!spec->takes_value) {
      if (inline_value) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", name, " takes no value"));
      }
      out.flags.emplace_back(name, "true");
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", name, " needs a value"));
      }
      inline_value = args[++i];
    }
    out.flags.emplace_back(name, *inline_value);
  }
  out.positional.assign(args.begin() + i, args.end());
  return out;
}

}  // namespace diskwire
