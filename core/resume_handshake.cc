#include "core/resume_handshake.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "storage/blake2b.h"

namespace diskwire {
namespace {

constexpr size_t kMacBytes = 32;
constexpr char kVersion = 1;

std::string Blake2b(absl::string_view key, absl::string_view data) {
  return storage::Blake2b::Hash(key, data, kMacBytes);
}

size_t BodySize(char kind) {
  switch (static_cast<ResumeKind>(kind)) {
    case ResumeKind::kHello:
      return 16 + 4 + 8 + kResumeChallengeBytes;
    case ResumeKind::kWelcome:
      return 8 + kResumeChallengeBytes;
    case ResumeKind::kReady:
      return 8;
    case ResumeKind::kCommit:
    case ResumeKind::kAbort:
      return 0;
  }
  return SIZE_MAX;
}

void PutLe(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i)
    out->push_back(static_cast<char>(v >> (8 * i)));
}

uint64_t GetLe(absl::string_view in, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) {
    v |= uint64_t{static_cast<uint8_t>(in[i])} << (8 * i);
  }
  return v;
}

std::string Body(const ResumeMessage& m) {
  std::string body;
  switch (m.kind) {
    case ResumeKind::kHello:
      PutLe(&body, m.session.high, 8);
      PutLe(&body, m.session.low, 8);
      PutLe(&body, m.episode, 4);
      PutLe(&body, m.kept_from, 8);
      body += m.challenge;
      break;
    case ResumeKind::kWelcome:
      PutLe(&body, m.kept_from, 8);
      body += m.challenge;
      break;
    case ResumeKind::kReady:
      PutLe(&body, m.delivered, 8);
      break;
    case ResumeKind::kCommit:
    case ResumeKind::kAbort:
      break;
  }
  return body;
}

std::string MacInput(const ResumeMessage& m, absl::string_view transcript) {
  return absl::StrCat(Body(m), "|", transcript);
}

}  // namespace

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  size_t done = 0;
  while (done < n) {
    // The kernel's CSPRNG; it blocks only before the pool is first seeded.
    const ssize_t got = getrandom(out.data() + done, n - done, 0);
    if (got > 0) {
      done += static_cast<size_t>(got);
    } else if (got < 0 && errno != EINTR) {
      break;  // no getrandom (a kernel before 3.17): /dev/urandom below
    }
  }
  if (done < n) {
    std::ifstream urandom("/dev/urandom", std::ios::binary);
    urandom.read(out.data() + done, static_cast<std::streamsize>(n - done));
  }
  return out;
}

ResumeSecret ResumeSecret::Derive(absl::string_view volume_key,
                                  absl::string_view client_nonce,
                                  absl::string_view server_nonce,
                                  const SessionId& id, uint32_t episode) {
  std::string input =
      absl::StrCat("diskwire-resume-v1", client_nonce, "|", server_nonce, "|");
  PutLe(&input, id.high, 8);
  PutLe(&input, id.low, 8);
  PutLe(&input, episode, 4);
  ResumeSecret s;
  s.key_ = Blake2b(volume_key, input);
  return s;
}

std::string ResumeSecret::Mac(absl::string_view label,
                              absl::string_view data) const {
  return Blake2b(key_, absl::StrCat(label, "|", data));
}

bool ResumeSecret::Verify(absl::string_view label, absl::string_view data,
                          absl::string_view mac) const {
  const std::string want = Mac(label, data);
  return mac.size() == want.size() &&
         storage::ConstantTimeEquals(mac.data(), want.data(), want.size());
}

size_t ResumeMessageSize(absl::string_view prefix) {
  if (prefix.size() < kResumePrefixBytes || prefix[0] != 'D' ||
      prefix[1] != 'W') {
    return 0;
  }
  const size_t body = BodySize(prefix[2]);
  return body == SIZE_MAX ? 0 : 4 + body + kMacBytes;
}

std::string EncodeResume(const ResumeMessage& m, const ResumeSecret& secret,
                         absl::string_view transcript) {
  std::string out = {'D', 'W', static_cast<char>(m.kind), kVersion};
  out += Body(m);
  out += secret.Mac(absl::string_view(&out[2], 1), MacInput(m, transcript));
  return out;
}

absl::StatusOr<ResumeMessage> DecodeResume(absl::string_view bytes) {
  const size_t size = ResumeMessageSize(bytes);
  if (size == 0) {
    return absl::InvalidArgumentError("not a diskwire resume message");
  }
  if (bytes.size() != size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resume message of ", bytes.size(), " bytes, want ", size));
  }
  if (bytes[3] != kVersion) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resume message version ", static_cast<int>(bytes[3]), ", want 1"));
  }
  ResumeMessage m;
  m.kind = static_cast<ResumeKind>(bytes[2]);
  absl::string_view body = bytes.substr(4, size - 4 - kMacBytes);
  switch (m.kind) {
    case ResumeKind::kHello:
      m.session.high = GetLe(body, 8);
      m.session.low = GetLe(body.substr(8), 8);
      m.episode = static_cast<uint32_t>(GetLe(body.substr(16), 4));
      m.kept_from = GetLe(body.substr(20), 8);
      m.challenge = std::string(body.substr(28));
      break;
    case ResumeKind::kWelcome:
      m.kept_from = GetLe(body, 8);
      m.challenge = std::string(body.substr(8));
      break;
    case ResumeKind::kReady:
      m.delivered = GetLe(body, 8);
      break;
    case ResumeKind::kCommit:
    case ResumeKind::kAbort:
      break;
  }
  m.mac = std::string(bytes.substr(size - kMacBytes));
  return m;
}

bool VerifyResume(const ResumeMessage& m, const ResumeSecret& secret,
                  absl::string_view transcript) {
  const char kind = static_cast<char>(m.kind);
  return secret.Verify(absl::string_view(&kind, 1), MacInput(m, transcript),
                       m.mac);
}

}  // namespace diskwire
