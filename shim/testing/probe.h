// File: shim/testing/probe.h
// Helpers shared by the shim probe's modes: a deterministic transcript of call
// results (values and errno names, never fd numbers or ports).

#ifndef DISKWIRE_SHIM_TESTING_PROBE_H_
#define DISKWIRE_SHIM_TESTING_PROBE_H_

#include <stddef.h>

namespace diskwire::probe {

// Prints "what = value" (and the errno name when value is -1), with errno as
// it was right after the call.
void Line(const char* what, long value);
// Prints "what: text".
void Note(const char* what, const char* text);
// Byte sum of buf[0, len), for comparing transferred data.
unsigned long Sum(const void* buf, size_t len);
// Fills buf with the probe's deterministic pattern, from stream position pos.
void Pattern(char* buf, size_t len, size_t pos);
// A length the compiler cannot see through (for the fortified variants).
size_t Opaque(size_t n);

// A connected loopback TCP pair (client, server) from a fresh listener.
struct TcpPair {
  int listener = -1;
  int client = -1;
  int server = -1;
  int port = 0;
};
// Makes one; aborts the probe on failure (the environment is broken).
TcpPair MakeTcpPair();

// The transcript: every interposed call on pipes, files, unix and TCP sockets,
// processes and signals, with results printed.
void RunFilesTranscript();
void RunSocketsTranscript();

}  // namespace diskwire::probe

#endif  // DISKWIRE_SHIM_TESTING_PROBE_H_
