// File: core/listeners.h
// The listening sockets a process advertises in its heartbeat, so that a peer
// whose connect() cannot reach one over the network can open the connection
// over the volume instead (docs/ARCHITECTURE.md, "Opening over storage"), and
// an operator can see which services diskwire covers (`diskwire status`).
//
// A listener is advertised as the address it is bound to; a wildcard bind
// (0.0.0.0, ::) stands for every address of its host, which the heartbeat
// lists beside it.
//
// Thread safety: ListenerTable is thread-safe; the free functions are pure.

#ifndef DISKWIRE_CORE_LISTENERS_H_
#define DISKWIRE_CORE_LISTENERS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "base/fork_mutex.h"
#include "core/identity.h"
#include "core/os_calls.h"

namespace diskwire {

struct ListenAddress {
  sockaddr_storage addr = {};
  bool v6only = false;  // an IPv6 wildcard that takes no IPv4 connection
};

// "10.0.0.2:5001", "[::]:5001", "[::]:5001/v6only"; and back (InvalidArgument
// naming the text).
std::string FormatListenAddress(const ListenAddress& listener);
absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text);

// The host's addresses as a heartbeat lists them ("10.0.0.1,fd00::1"); words
// that are not addresses are skipped.
std::vector<MappedAddress> ParseHostAddresses(absl::string_view csv);

// Would a connection to `dest` reach `listener`, on a host with the addresses
// `host`?
bool ListenerAccepts(const ListenAddress& listener,
                     const std::vector<MappedAddress>& host,
                     const sockaddr_storage& dest);

class ListenerTable {
 public:
  explicit ListenerTable(OsCalls* os) : os_(os) {}

  // `fd` is listening now (the application called listen(), or inherited the
  // socket). Ignored unless it is an IP TCP listener.
  void Add(int fd);
  // The listeners still open, each address once. An entry whose fd was closed,
  // or now names another file, is dropped here: no close path has to report.
  std::vector<ListenAddress> Current();
  // fork(): the table is whole across it.
  void BeforeFork() ABSL_EXCLUSIVE_LOCK_FUNCTION(mu_) { mu_.Lock(); }
  void AfterForkParent() ABSL_UNLOCK_FUNCTION(mu_) { mu_.Unlock(); }
  void AfterForkChild()
      ABSL_UNLOCK_FUNCTION(mu_) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    RenewInForkChild(&mu_);
  }
  // This process's listener that a connection to `dest` would reach.
  std::optional<ListenAddress> Find(const sockaddr_storage& dest,
                                    const std::vector<MappedAddress>& host);

 private:
  struct Entry {
    int fd;
    dev_t dev;
    ino_t ino;
    ListenAddress listener;
  };
  bool StillListening(const Entry& e);

  OsCalls* const os_;
  absl::Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace diskwire

#endif  // DISKWIRE_CORE_LISTENERS_H_
