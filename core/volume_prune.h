// File: core/volume_prune.h
// What no live process needs, reclaimed from a volume (storage/dir_prune.h),
// with the knowledge only core/ has: which sessions the live processes'
// heartbeats still list, whose channels stay whatever their age. Used by
// `diskwire prune` and by every engine now and then (the survivors of a
// dead peer clean up after it).

#ifndef DISKWIRE_CORE_VOLUME_PRUNE_H_
#define DISKWIRE_CORE_VOLUME_PRUNE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "storage/dir_prune.h"
#include "storage/volume.h"

namespace diskwire {

absl::StatusOr<storage::PruneReport> PruneVolume(const std::string& root,
                                                 storage::Volume& volume,
                                                 uint64_t now_ns,
                                                 int64_t stale_after_ms);

}  // namespace diskwire

#endif  // DISKWIRE_CORE_VOLUME_PRUNE_H_
