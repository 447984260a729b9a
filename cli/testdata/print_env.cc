// Prints the environment variables that `diskwire run` sets (every
// DISKWIRE_* one, LD_PRELOAD, and STANDIN_LOADED from the stand-in preload
// library), one NAME=value per line, sorted, then its arguments.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  std::vector<std::string> lines;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    if (entry.rfind("DISKWIRE_", 0) == 0 ||
        entry.rfind("LD_PRELOAD=", 0) == 0 ||
        entry.rfind("STANDIN_LOADED=", 0) == 0) {
      lines.push_back(entry);
    }
  }
  std::sort(lines.begin(), lines.end());
  for (const std::string& l : lines) std::printf("%s\n", l.c_str());
  for (int i = 1; i < argc; ++i) std::printf("arg=%s\n", argv[i]);
  return 0;
}
