// File: core/datagram_paths.h
// Whether the network still carries datagrams to a peer host's address. UDP
// acknowledges nothing, so the relay sends its own probe to the peer's
// engine (core/datagram_wire.h) every quarter of the detection bound while
// the application talks to that address; the path is down once no answer
// came for the whole bound, and up again at the first answer.
//
// Thread safety: thread-compatible (the relay holds its lock around it).

#ifndef DISKWIRE_CORE_DATAGRAM_PATHS_H_
#define DISKWIRE_CORE_DATAGRAM_PATHS_H_

#include <array>
#include <cstdint>
#include <map>
#include <vector>

namespace diskwire {

class DatagramPaths {
 public:
  using Address = std::array<uint8_t, 16>;  // IPv4 in its mapped form

  struct Options {
    int64_t detect_ns = 2'000'000'000;
    // A path nobody sent to for this long is forgotten (and not probed).
    int64_t idle_ns = 30'000'000'000;
  };
  explicit DatagramPaths(const Options& options) : options_(options) {}

  // The application sends to `address`: probe it from now on.
  void NoteUse(const Address& address, int64_t now);
  // An answer came from `address`. True when the path was down.
  bool OnAnswer(const Address& address, int64_t now);
  bool IsDown(const Address& address) const;
  // The network refused a send to `address` (no route, interface down):
  // down at once. True when it was up.
  bool MarkDown(const Address& address, int64_t now);

  // The paths to probe now; each is due again a quarter bound later. Paths
  // idle for Options::idle_ns are forgotten here.
  std::vector<Address> DueProbes(int64_t now);
  // Marks down the paths with no answer for the whole bound and returns them.
  std::vector<Address> Expire(int64_t now);
  // When DueProbes or Expire has something next (INT64_MAX: nothing).
  int64_t NextDeadline() const;

 private:
  struct Path {
    int64_t last_use_ns = 0;
    int64_t evidence_ns = 0;  // the last answer, or when probing began
    int64_t next_probe_ns = 0;
    bool down = false;
  };
  int64_t interval() const { return options_.detect_ns / 4; }

  const Options options_;
  std::map<Address, Path> paths_;
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_DATAGRAM_PATHS_H_
