// File: core/resume_handshake.h
// The messages two engines exchange on a resume connection — the fresh TCP
// connection that takes a session back from the volume to the network
// (docs/ARCHITECTURE.md, "Resume") — and the secret that authenticates them.
//
// The secret is never sent on the network. Each process publishes a random
// nonce in its heartbeat on the volume; both ends of session S in episode E
// derive
//   K = BLAKE2b-256(key = the volume key or none,
//                   "diskwire-resume-v1" | client nonce | server nonce | S | E)
// and every message carries a BLAKE2b-256 MAC keyed with K over its fields and
// both sides' fresh random challenges. A process that cannot read the volume
// (or, with DISKWIRE_KEY_FILE, lacks the key) cannot compute K; a recorded
// exchange cannot be replayed, because the challenges are new each time.
//
// Wire form of every message: "DW" | kind (1 byte) | version 1 | body | MAC
// (32 bytes); the body's size is fixed by the kind:
//   'H' hello   (client → server)  session id (16) | episode (4) | challenge
//   (16) 'W' welcome (server → client)  challenge (16) 'R' ready   (both ways)
//   delivered offset (8) 'C' commit  (client → server)  (empty) 'A' abort
//   (client → server)  (empty)
// Integers are little-endian.
//
// Thread safety: values and pure functions.

#ifndef DISKWIRE_CORE_RESUME_HANDSHAKE_H_
#define DISKWIRE_CORE_RESUME_HANDSHAKE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/identity.h"

namespace diskwire {

inline constexpr size_t kResumeNonceBytes = 32;
inline constexpr size_t kResumeChallengeBytes = 16;

// A fresh random nonce (kResumeNonceBytes) or challenge
// (kResumeChallengeBytes).
std::string RandomBytes(size_t n);

class ResumeSecret {
 public:
  // `volume_key` is empty (no key file) or 32 bytes; the nonces are the
  // client's and the server's process nonces.
  static ResumeSecret Derive(absl::string_view volume_key,
                             absl::string_view client_nonce,
                             absl::string_view server_nonce,
                             const SessionId& id, uint32_t episode);

  // 32-byte MAC of `label` and `data`.
  std::string Mac(absl::string_view label, absl::string_view data) const;
  // Constant-time comparison with Mac(label, data).
  bool Verify(absl::string_view label, absl::string_view data,
              absl::string_view mac) const;

 private:
  std::string key_;
};

enum class ResumeKind : char {
  kHello = 'H',
  kWelcome = 'W',
  kReady = 'R',
  kCommit = 'C',
  kAbort = 'A',
};

struct ResumeMessage {
  ResumeKind kind = ResumeKind::kHello;
  SessionId session;     // hello
  uint32_t episode = 0;  // hello
  // hello, welcome: the oldest stream offset the sender can still resend (its
  // replay ring's tail). The receiver resumes only once its application has
  // read everything below it: the rest only the receiver has.
  uint64_t kept_from = 0;
  std::string challenge;   // hello, welcome
  uint64_t delivered = 0;  // ready
  std::string mac;         // every message
};

// Bytes of a whole message whose first 3 bytes are `prefix`; 0 when they
// are not a known kind (the peer is no diskwire engine).
size_t ResumeMessageSize(absl::string_view prefix);
inline constexpr size_t kResumePrefixBytes = 3;

// Encodes `m` with its MAC under `secret`; `transcript` is both challenges
// (client's then server's; only the client's for hello and welcome's own).
std::string EncodeResume(const ResumeMessage& m, const ResumeSecret& secret,
                         absl::string_view transcript);
// Parses one whole message (without checking the MAC). InvalidArgument on a
// bad magic, kind, version or size.
absl::StatusOr<ResumeMessage> DecodeResume(absl::string_view bytes);
// Does `m`'s MAC match `secret` and `transcript`?
bool VerifyResume(const ResumeMessage& m, const ResumeSecret& secret,
                  absl::string_view transcript);

}  // namespace diskwire

#endif  // DISKWIRE_CORE_RESUME_HANDSHAKE_H_
