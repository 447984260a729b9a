#include "core/host_identity.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace diskwire {

HostIdentity CurrentHost() {
  HostIdentity host;
  char boot_id[64] = {};
  if (FILE* f = fopen("/proc/sys/kernel/random/boot_id", "re")) {
    if (fgets(boot_id, sizeof(boot_id), f) == nullptr) boot_id[0] = '\0';
    fclose(f);
  }
  struct stat ns;
  const std::string boot(absl::StripAsciiWhitespace(boot_id));
  if (!boot.empty() && stat("/proc/self/ns/net", &ns) == 0) {
    host.key = absl::StrCat(boot, "/", ns.st_ino);
  }
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return host;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || (a->ifa_flags & IFF_LOOPBACK)) continue;
    char text[INET6_ADDRSTRLEN] = {};
    const int family = a->ifa_addr->sa_family;
    const void* raw =
        family == AF_INET
            ? static_cast<const void*>(
                  &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr)
        : family == AF_INET6
            ? static_cast<const void*>(
                  &reinterpret_cast<sockaddr_in6*>(a->ifa_addr)->sin6_addr)
            : nullptr;
    if (raw == nullptr || inet_ntop(family, raw, text, sizeof(text)) == nullptr)
      continue;
    if (family == AF_INET6 && strncmp(text, "fe80:", 5) == 0) continue;
    absl::StrAppend(&host.addresses, host.addresses.empty() ? "" : ",", text);
  }
  freeifaddrs(list);
  return host;
}

}  // namespace diskwire
