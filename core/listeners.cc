#include "core/listeners.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace diskwire {

std::string FormatListenAddress(const ListenAddress& listener) {
  std::string text = FormatAddress(listener.addr);
  if (listener.v6only) absl::StrAppend(&text, "/v6only");
  return text;
}

absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text) {
  ListenAddress listener;
  listener.v6only = absl::ConsumeSuffix(&text, "/v6only");
  absl::StatusOr<sockaddr_storage> addr = ParseAddress(text);
  if (!addr.ok()) return addr.status();
  listener.addr = *addr;
  if (listener.v6only && listener.addr.ss_family != AF_INET6) {
    return absl::InvalidArgumentError(
        absl::StrCat("an IPv4 listener cannot be v6only: \"", text, "\""));
  }
  return listener;
}

std::vector<MappedAddress> ParseHostAddresses(absl::string_view csv) {
  std::vector<MappedAddress> out;
  for (absl::string_view word : absl::StrSplit(csv, ',', absl::SkipEmpty())) {
    const bool v6 = word.find(':') != absl::string_view::npos;
    auto addr = ParseAddress(v6 ? absl::StrCat("[", word, "]:0")
                                : absl::StrCat(word, ":0"));
    MappedAddress m;
    if (addr.ok() && ToMapped(*addr, &m)) out.push_back(m);
  }
  return out;
}

bool ListenerAccepts(const ListenAddress& listener,
                     const std::vector<MappedAddress>& host,
                     const sockaddr_storage& dest) {
  MappedAddress l, d;
  if (!ToMapped(listener.addr, &l) || !ToMapped(dest, &d) || l.port != d.port)
    return false;
  if (!l.IsUnspecified()) return l.bytes == d.bytes;
  // A wildcard: any address of its host, of a family it takes.
  const bool v4_wildcard = listener.addr.ss_family == AF_INET;
  if (d.IsV4() ? listener.v6only : v4_wildcard) return false;
  return std::any_of(host.begin(), host.end(), [&](const MappedAddress& a) {
    return a.bytes == d.bytes;
  });
}

void ListenerTable::Add(int fd) {
  Entry e;
  e.fd = fd;
  struct stat st;
  if (fstat(fd, &st) != 0) return;
  e.dev = st.st_dev;
  e.ino = st.st_ino;
  socklen_t len = sizeof(e.listener.addr);
  if (!os_->GetSockName(fd, reinterpret_cast<sockaddr*>(&e.listener.addr), &len)
           .ok() ||
      (e.listener.addr.ss_family != AF_INET &&
       e.listener.addr.ss_family != AF_INET6)) {
    return;
  }
  if (e.listener.addr.ss_family == AF_INET6) {
    int v6only = 0;
    len = sizeof(v6only);
    os_->GetSockOpt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len);
    e.listener.v6only = v6only != 0;
  }
  absl::MutexLock lock(&mu_);
  entries_.erase(
      std::remove_if(entries_.begin(), entries_.end(),
                     [fd](const Entry& old) { return old.fd == fd; }),
      entries_.end());
  entries_.push_back(e);
}

bool ListenerTable::StillListening(const Entry& e) {
  struct stat st;
  if (fstat(e.fd, &st) != 0 || st.st_dev != e.dev || st.st_ino != e.ino)
    return false;
  int listening = 0;
  socklen_t len = sizeof(listening);
  return os_->GetSockOpt(e.fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len)
             .ok() &&
         listening != 0;
}

std::vector<ListenAddress> ListenerTable::Current() {
  absl::MutexLock lock(&mu_);
  entries_.erase(
      std::remove_if(entries_.begin(), entries_.end(),
                     [this](const Entry& e) { return !StillListening(e); }),
      entries_.end());
  std::vector<ListenAddress> out;
  for (const Entry& e : entries_) {
    const std::string text = FormatListenAddress(e.listener);
    if (std::none_of(out.begin(), out.end(), [&](const ListenAddress& o) {
          return FormatListenAddress(o) == text;
        })) {
      out.push_back(e.listener);
    }
  }
  return out;
}

std::optional<ListenAddress> ListenerTable::Find(
    const sockaddr_storage& dest, const std::vector<MappedAddress>& host) {
  for (const ListenAddress& l : Current()) {
    if (ListenerAccepts(l, host, dest)) return l;
  }
  return std::nullopt;
}

}  // namespace diskwire
