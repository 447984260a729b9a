// File: storage/open_beneath.h
// Opening a path below a directory without passing through a symbolic link,
// one component at a time: what openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
// does in one call, for the kernels and sandboxes that lack openat2 (Linux
// before 5.6, seccomp filters, valgrind). Used by the confined FileOps.

#ifndef DISKWIRE_STORAGE_OPEN_BENEATH_H_
#define DISKWIRE_STORAGE_OPEN_BENEATH_H_

#include <sys/types.h>

#include <string>

namespace diskwire::storage {

// Opens `relative` (components separated by '/', "." for `root` itself) below
// the directory fd `root` with `flags` and `mode`, as openat would, except
// that no component may be a symbolic link (ELOOP) and none may be ".."
// (EXDEV). Returns the fd, or -1 with errno set.
int OpenBeneathByComponents(int root, const std::string& relative, int flags,
                            mode_t mode);

}  // namespace diskwire::storage

#endif  // DISKWIRE_STORAGE_OPEN_BENEATH_H_
