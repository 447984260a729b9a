#include "core/failover_message.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace diskwire {

std::string EncodeFailover(const FailoverMessage& m) {
  std::string out = absl::StrCat(
      "failover 1 session=", SessionIdHex(m.session),
      " role=", m.sender_role == Role::kClient ? "client" : "server",
      " offset=", m.failover_offset, " delivered=", m.delivered,
      " from=", m.from_process, " episode=", m.episode);
  if (m.claim != 0) absl::StrAppend(&out, " claim=", m.claim);
  if (m.to_claim != 0) absl::StrAppend(&out, " to_claim=", m.to_claim);
  if (m.IsOpenRequest())
    absl::StrAppend(&out, " open_from=", m.open_from, " open_to=", m.open_to);
  if (!m.answer.empty()) absl::StrAppend(&out, " answer=", m.answer);
  if (!m.cause.empty()) absl::StrAppend(&out, " cause=", m.cause);
  return out;
}

absl::StatusOr<FailoverMessage> DecodeFailover(absl::string_view payload) {
  std::vector<absl::string_view> words =
      absl::StrSplit(payload, ' ', absl::SkipEmpty());
  if (words.size() < 2 || words[0] != "failover" || words[1] != "1") {
    return absl::InvalidArgumentError(
        "not a diskwire failover message (version 1)");
  }
  FailoverMessage m;
  bool have_session = false, have_role = false, have_offset = false,
       have_from = false;
  for (size_t i = 2; i < words.size(); ++i) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(words[i], '=');
    bool ok = true;
    if (kv.first == "session") {
      auto id = ParseSessionIdHex(kv.second);
      ok = id.ok();
      if (ok) m.session = *id;
      have_session = ok;
    } else if (kv.first == "role") {
      ok = kv.second == "client" || kv.second == "server";
      m.sender_role = kv.second == "client" ? Role::kClient : Role::kServer;
      have_role = ok;
    } else if (kv.first == "offset") {
      ok = absl::SimpleAtoi(kv.second, &m.failover_offset);
      have_offset = ok;
    } else if (kv.first == "delivered") {
      ok = absl::SimpleAtoi(kv.second, &m.delivered);
    } else if (kv.first == "episode") {
      ok = absl::SimpleAtoi(kv.second, &m.episode) && m.episode > 0;
    } else if (kv.first == "claim") {
      ok = absl::SimpleAtoi(kv.second, &m.claim);
    } else if (kv.first == "to_claim") {
      ok = absl::SimpleAtoi(kv.second, &m.to_claim);
    } else if (kv.first == "open_from") {
      m.open_from = std::string(kv.second);
      ok = !m.open_from.empty();
    } else if (kv.first == "open_to") {
      m.open_to = std::string(kv.second);
      ok = !m.open_to.empty();
    } else if (kv.first == "answer") {
      m.answer = std::string(kv.second);
      ok = m.answer == "accepted" || m.answer == "refused";
    } else if (kv.first == "cause") {
      // One word of lower-case letters: a later version may add others.
      m.cause = std::string(kv.second);
      ok = !m.cause.empty() &&
           m.cause.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") ==
               std::string::npos;
    } else if (kv.first == "from") {
      m.from_process = std::string(kv.second);
      have_from = !m.from_process.empty();
    }
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "failover message: bad ", kv.first, " \"", kv.second, "\""));
    }
  }
  if (!have_session || !have_role || !have_offset || !have_from) {
    return absl::InvalidArgumentError(
        "failover message lacks one of session, role, offset, from");
  }
  if (m.open_from.empty() != m.open_to.empty()) {
    return absl::InvalidArgumentError(
        "failover message has one of open_from, open_to without the other");
  }
  return m;
}

}  // namespace diskwire
