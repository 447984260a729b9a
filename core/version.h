// File: core/version.h
// diskwire's version: `diskwire --version`, each process's heartbeat (so that
// `diskwire status` shows hosts that run different versions), and the Debian
// package's version (cli/packaging/changelog must agree: a test checks it).

#ifndef DISKWIRE_CORE_VERSION_H_
#define DISKWIRE_CORE_VERSION_H_

namespace diskwire {

inline constexpr char kVersion[] = "0.2.0";

}  // namespace diskwire

#endif  // DISKWIRE_CORE_VERSION_H_
