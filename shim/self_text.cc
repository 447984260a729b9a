// File: shim/self_text.cc

#include "shim/self_text.h"

#include <link.h>
#include <pthread.h>

namespace diskwire::shim {
namespace internal {
uintptr_t g_self_base = 0;
uintptr_t g_self_text_begin = 0;
uintptr_t g_self_text_end = 0;
}  // namespace internal

namespace {

pthread_once_t g_once = PTHREAD_ONCE_INIT;

// dl_iterate_phdr callback: records the executable segment of the object
// that contains this very function.
int FindSelf(dl_phdr_info* info, size_t, void*) {
  const auto self = reinterpret_cast<uintptr_t>(&FindSelf);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    const uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
    const uintptr_t end = begin + ph.p_memsz;
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0 || self < begin ||
        self >= end) {
      continue;
    }
    internal::g_self_base = info->dlpi_addr;
    internal::g_self_text_begin = begin;
    internal::g_self_text_end = end;
    return 1;
  }
  return 0;
}

void Init() { dl_iterate_phdr(&FindSelf, nullptr); }

}  // namespace

void InitSelfText() { pthread_once(&g_once, &Init); }

}  // namespace diskwire::shim
