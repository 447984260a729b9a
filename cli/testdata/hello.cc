// A program for the ELF checks: built once statically, once dynamically.
#include <cstdio>

int main() {
  std::puts("hello");
  return 0;
}
