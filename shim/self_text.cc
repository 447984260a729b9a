// File: shim/self_text.cc

#include "shim/self_text.h"

#include <link.h>
#include <pthread.h>

namespace diskwire::shim {
namespace internal {
uintptr_t g_self_base = 0;
uintptr_t g_self_text_begin = 0;
uintptr_t g_self_text_end = 0;
uintptr_t g_engine_text_begin = 0;
uintptr_t g_engine_text_end = 0;
}  // namespace internal

namespace {

pthread_once_t g_once = PTHREAD_ONCE_INIT;

// What FindSegment looks for, and what it found.
struct Segment {
  uintptr_t address;  // inside the segment sought
  uintptr_t base = 0, begin = 0, end = 0;
};

// dl_iterate_phdr callback: records the executable segment that contains
// `segment->address`.
int FindSegment(dl_phdr_info* info, size_t, void* data) {
  auto* segment = static_cast<Segment*>(data);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    const uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
    const uintptr_t end = begin + ph.p_memsz;
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0 ||
        segment->address < begin || segment->address >= end) {
      continue;
    }
    segment->base = info->dlpi_addr;
    segment->begin = begin;
    segment->end = end;
    return 1;
  }
  return 0;
}

void Init() {
  Segment self{reinterpret_cast<uintptr_t>(&FindSegment)};
  dl_iterate_phdr(&FindSegment, &self);
  internal::g_self_base = self.base;
  internal::g_self_text_begin = self.begin;
  internal::g_self_text_end = self.end;
}

}  // namespace

void InitSelfText() { pthread_once(&g_once, &Init); }

void AddEngineText(const void* address_in_it) {
  Segment engine{reinterpret_cast<uintptr_t>(address_in_it)};
  dl_iterate_phdr(&FindSegment, &engine);
  internal::g_engine_text_begin = engine.begin;
  internal::g_engine_text_end = engine.end;
}

}  // namespace diskwire::shim
