// Cost of Selector::Matches, which runs on every connect() and accept() of a
// configured process: a typical short rule list, a long one, and the
// no-match case that scans every rule.
//   bazel run -c opt //core:selector_benchmark

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "core/selector.h"

namespace diskwire {
namespace {

sockaddr_in V4(const char* ip, uint16_t port) {
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(port);
  inet_pton(AF_INET, ip, &in.sin_addr);
  return in;
}

void BM_MatchShortList(benchmark::State& state) {
  Selector s = Selector::Parse("22,10.0.0.0/8:7000-7010,[fd00::/8]:*").value();
  sockaddr_in remote = V4("10.1.2.3", 7005);
  for (auto _ : state) {
    benchmark::DoNotOptimize(s.Matches(nullptr,
                                       reinterpret_cast<sockaddr*>(&remote),
                                       Selector::Role::kConnect));
  }
}
BENCHMARK(BM_MatchShortList);

// 100 rules, none matching: the worst case.
void BM_NoMatchHundredRules(benchmark::State& state) {
  std::string rules = "10.0.0.1:1";
  for (int i = 2; i <= 100; ++i)
    absl::StrAppend(&rules, ",10.0.", i, ".0/24:", i);
  Selector s = Selector::Parse(rules).value();
  sockaddr_in local = V4("127.0.0.1", 9999), remote = V4("192.168.1.1", 5);
  for (auto _ : state) {
    benchmark::DoNotOptimize(s.Matches(reinterpret_cast<sockaddr*>(&local),
                                       reinterpret_cast<sockaddr*>(&remote),
                                       Selector::Role::kAccept));
  }
}
BENCHMARK(BM_NoMatchHundredRules);

}  // namespace
}  // namespace diskwire

BENCHMARK_MAIN();
