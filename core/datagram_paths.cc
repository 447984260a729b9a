#include "core/datagram_paths.h"

#include <algorithm>
#include <limits>

namespace diskwire {

void DatagramPaths::NoteUse(const Address& address, int64_t now) {
  auto [it, fresh] = paths_.try_emplace(address);
  Path& p = it->second;
  p.last_use_ns = now;
  if (fresh) {
    p.evidence_ns = now;
    p.next_probe_ns = now;
  }
}

bool DatagramPaths::OnAnswer(const Address& address, int64_t now) {
  auto it = paths_.find(address);
  if (it == paths_.end()) return false;
  Path& p = it->second;
  p.evidence_ns = std::max(p.evidence_ns, now);
  const bool was_down = p.down;
  p.down = false;
  return was_down;
}

bool DatagramPaths::IsDown(const Address& address) const {
  auto it = paths_.find(address);
  return it != paths_.end() && it->second.down;
}

bool DatagramPaths::MarkDown(const Address& address, int64_t now) {
  NoteUse(address, now);
  Path& p = paths_[address];
  const bool was_up = !p.down;
  p.down = true;
  return was_up;
}

std::vector<DatagramPaths::Address> DatagramPaths::DueProbes(int64_t now) {
  std::vector<Address> due;
  for (auto it = paths_.begin(); it != paths_.end();) {
    Path& p = it->second;
    if (now - p.last_use_ns > options_.idle_ns) {
      it = paths_.erase(it);
      continue;
    }
    if (p.next_probe_ns <= now) {
      due.push_back(it->first);
      p.next_probe_ns = now + std::max<int64_t>(interval(), 1'000'000);
    }
    ++it;
  }
  return due;
}

std::vector<DatagramPaths::Address> DatagramPaths::Expire(int64_t now) {
  std::vector<Address> gone;
  for (auto& [address, p] : paths_) {
    if (!p.down && now - p.evidence_ns > options_.detect_ns) {
      p.down = true;
      gone.push_back(address);
    }
  }
  return gone;
}

int64_t DatagramPaths::NextDeadline() const {
  int64_t next = std::numeric_limits<int64_t>::max();
  for (const auto& [address, p] : paths_) {
    next = std::min(next, p.next_probe_ns);
    if (!p.down) next = std::min(next, p.evidence_ns + options_.detect_ns + 1);
  }
  return next;
}

}  // namespace diskwire
