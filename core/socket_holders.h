// File: core/socket_holders.h
// Whether a process other than this one holds an open file: the kernel keeps
// a socket's connection open (and sends no FIN) until the last descriptor of
// it is closed in every process, so a close in a forking server must know
// whether a child still holds the connection before it ends the stream.

#ifndef DISKWIRE_CORE_SOCKET_HOLDERS_H_
#define DISKWIRE_CORE_SOCKET_HOLDERS_H_

#include "absl/status/statusor.h"

namespace diskwire {

// True when some other process has a descriptor of the file `fd` names, or
// may have one: a process whose descriptors cannot be read (another user's,
// without privilege) counts as holding it. Reads /proc/*/fd: costs a readlink
// per descriptor on the machine, so call it where a close needs the answer,
// not on a data path. Errors: fstat of `fd`, or /proc unreadable.
absl::StatusOr<bool> OtherProcessHolds(int fd);

}  // namespace diskwire

#endif  // DISKWIRE_CORE_SOCKET_HOLDERS_H_
