// File: storage/record_decoder_fuzz.h
// The record decoder's fuzz entry point, shared by the libFuzzer build, the
// corpus-replaying binary and the corpus test.

#ifndef DISKWIRE_STORAGE_RECORD_DECODER_FUZZ_H_
#define DISKWIRE_STORAGE_RECORD_DECODER_FUZZ_H_

#include <cstddef>
#include <cstdint>

// Decodes `data` as a record stream, with and without a key, and as a
// segment header; aborts if an invariant breaks (a decoded record must
// re-encode to the same bytes). Never reads outside `data`.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

#endif  // DISKWIRE_STORAGE_RECORD_DECODER_FUZZ_H_
