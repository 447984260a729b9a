// File: core/host_identity.h
// What tells two hosts apart when they report the same node name: the
// kernel's boot id with the network namespace (two namespaces of one machine
// are two hosts to diskwire), and the host's addresses, for the operator.

#ifndef DISKWIRE_CORE_HOST_IDENTITY_H_
#define DISKWIRE_CORE_HOST_IDENTITY_H_

#include <string>

namespace diskwire {

struct HostIdentity {
  std::string key;        // "<boot id>/<netns inode>"; "" when unknown
  std::string addresses;  // "10.0.0.1,fd00::1": non-loopback, this netns
};

// Reads /proc/sys/kernel/random/boot_id, /proc/self/ns/net and the
// interfaces' addresses. Never fails: what cannot be read stays empty.
HostIdentity CurrentHost();

}  // namespace diskwire

#endif  // DISKWIRE_CORE_HOST_IDENTITY_H_
