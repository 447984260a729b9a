// File: bench/storage_bench_lun.h
// The LUN backend's figures for storage_bench (storage_bench_lun.cc).

#ifndef DISKWIRE_BENCH_STORAGE_BENCH_LUN_H_
#define DISKWIRE_BENCH_STORAGE_BENCH_LUN_H_

#include <cstddef>
#include <string>

namespace diskwire::storage {

// Measures in a 1 GiB image under `dir` (which must support O_DIRECT),
// attached as two loop devices; prints the figures and ratios. Whether the
// targets were met (true when skipped for lack of root or loop devices).
bool RunLunBench(const std::string& dir, size_t mib);

}  // namespace diskwire::storage

#endif  // DISKWIRE_BENCH_STORAGE_BENCH_LUN_H_
