#!/usr/bin/env python3
"""Generates diskwire(8), diskwire(7) and the bash completion from the
`diskwire` binary's own help texts, the one source: `diskwire --help` (the
commands and every DISKWIRE_* variable) and `diskwire help CMD` (each
command's flags). So --help, the man pages and the completion cannot drift
apart; tests/packaging/package_test.sh also holds docs/CONFIG.md to the same
variables and defaults.

  gen_docs.py DISKWIRE_BINARY OUT_DIR
writes OUT_DIR/diskwire.8, OUT_DIR/diskwire.7 and OUT_DIR/diskwire.bash.
"""

import os
import re
import subprocess
import sys

DATE = "2026-12"


def run(binary, *args):
    return subprocess.run([binary, *args], capture_output=True, text=True,
                          check=True).stdout


def commands(main_help):
    """[(name, summary)] from the "Commands:" block of `diskwire --help`."""
    out, inside = [], False
    for line in main_help.splitlines():
        if line.startswith("Commands:"):
            inside = True
            continue
        if inside:
            if not line.startswith("  "):
                break
            name, _, summary = line.strip().partition("\t")
            if name.startswith("help") or name.startswith("version"):
                continue
            out.append((name, summary.strip()))
    return out


def variables(main_help):
    """[(name, syntax, default, help)] from `diskwire --help`."""
    out = []
    lines = main_help.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"  (DISKWIRE_[A-Z_]+)=(\S+)  \(default (.*)\)$", line)
        if m:
            out.append((m.group(1), m.group(2), m.group(3), lines[i + 1].strip()))
    return out


def flags(command_help):
    """The long flags a command's help names, in order, once each."""
    seen = []
    for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", command_help):
        if flag not in seen:
            seen.append(flag)
    return seen


def roff(text):
    """Plain text as roff: backslashes and leading dots escaped."""
    text = text.replace("\\", "\\e")
    return "\n".join("\\&" + l if l.startswith((".", "'")) else l
                     for l in text.splitlines())


def verbatim(text):
    return f".nf\n{roff(text.rstrip())}\n.fi\n"


def page8(binary, version, cmds):
    parts = [f'.TH DISKWIRE 8 "{DATE}" "diskwire {version}" "System Administration"',
             ".SH NAME", "diskwire \\- keep TCP conversations alive over shared storage "
             "when the network fails",
             ".SH SYNOPSIS", ".B diskwire", ".I COMMAND", "[\\fIARGS\\fR...]",
             ".br", ".B diskwire --version",
             ".SH DESCRIPTION",
             "diskwire runs unmodified, dynamically linked programs with "
             "\\fBlibdiskwire.so\\fR preloaded. On the sockets an operator selects it "
             "watches each connection and, when the network between two hosts fails "
             "while a volume both can reach still works, carries the byte stream over "
             "that volume, then back to the network when it heals. The library and "
             "its environment variables are described in \\fBdiskwire\\fR(7).",
             ".SH COMMANDS"]
    for name, summary in cmds:
        parts += [f".SS {name}", roff(summary) + ".", verbatim(run(binary, "help", name))]
    parts += [".SH EXIT STATUS", "2 for a usage error; each command's own are listed "
              "above.", ".SH SEE ALSO", "\\fBdiskwire\\fR(7), \\fBsystemd.unit\\fR(5), "
              "\\fBld.so\\fR(8)", ""]
    return "\n".join(parts)


def page7(version, variables_):
    parts = [f'.TH DISKWIRE 7 "{DATE}" "diskwire {version}" "Miscellaneous"',
             ".SH NAME", "diskwire, libdiskwire.so \\- the preload library, its "
             "settings and what it does on a cut",
             ".SH DESCRIPTION",
             "A process started with \\fBLD_PRELOAD\\fR naming libdiskwire.so and at "
             "least one \\fBDISKWIRE_*\\fR variable carries its selected TCP "
             "connections over the volume when the network fails. With no such "
             "variable every call passes straight through: the program runs exactly "
             "as without diskwire. A malformed variable gets one line naming it.",
             ".SH ENVIRONMENT"]
    for name, syntax, default, help_ in variables_:
        parts += [".TP", f"\\fB{name}\\fR=\\fI{roff(syntax)}\\fR (default {roff(default)})",
                  roff(help_)]
    parts += [
        ".SH SELECTION",
        "\\fBDISKWIRE_SELECT\\fR is a comma-separated list of rules: \\fIPORT\\fR, "
        "\\fIHOST\\fR:\\fIPORT\\fR, \\fICIDR\\fR:\\fIPORT\\fR or "
        "[\\fIIPV6\\fR/\\fILEN\\fR]:\\fIPORT\\fR, with \\fB*\\fR wildcards and "
        "\\fILO\\fR-\\fIHI\\fR port ranges. A client's rule matches the destination "
        "it connects to; a server's, the local port it accepts on.",
        ".SH ON A CUT",
        "While the network works, bytes go over TCP and nothing per connection "
        "touches the volume. When a selected connection fails (an error, or data "
        "unacknowledged for \\fBDISKWIRE_DETECT_MS\\fR) and the peer's diskwire is "
        "alive on the volume, the application's descriptor is swapped for a local "
        "socket pair and the stream continues over the volume from the oldest byte "
        "the peer lacks: no byte lost, duplicated or reordered, and poll, select "
        "and epoll keep working. When the network heals the session moves back to "
        "a fresh TCP connection. A connect() that the network cannot complete while "
        "a live peer advertises a listener for its destination opens over the "
        "volume. With no diskwire peer a connection behaves as plain TCP.",
        ".SH LIMITS",
        "Static binaries and Go programs do not use the C library's socket calls: "
        "LD_PRELOAD cannot reach them (\\fBdiskwire run\\fR warns). io_uring "
        "bypasses the C library too. setuid programs ignore LD_PRELOAD. Both ends "
        "must see the same four-tuple: NAT between them leaves connections plain TCP.",
        ".SH FILES",
        "/usr/lib/diskwire/libdiskwire.so",
        ".SH SEE ALSO", "\\fBdiskwire\\fR(8), \\fBld.so\\fR(8)", ""]
    return "\n".join(parts)


def completion(binary, cmds):
    cases = []
    for name, _ in cmds:
        text = run(binary, "help", name)
        if "diskwire run --help" in text:  # "the same flags as run"
            text += run(binary, "help", "run")
        cases.append(f"    {name}) opts=\"{' '.join(flags(text))}\" ;;")
    names = " ".join(name for name, _ in cmds)
    return f"""# bash completion for diskwire, generated from its own --help texts.
_diskwire() {{
  local cur=${{COMP_WORDS[COMP_CWORD]}} opts
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "{names} help --help --version" -- "$cur"))
    return
  fi
  case "${{COMP_WORDS[1]}}" in
{chr(10).join(cases)}
    help) opts="{names}" ;;
    *) opts="" ;;
  esac
  if [[ "$cur" == -* || "${{COMP_WORDS[1]}}" == help ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}}
complete -F _diskwire diskwire
"""


def main():
    binary, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    main_help = run(binary, "--help")
    version = run(binary, "--version").split()[1]
    cmds = commands(main_help)
    files = {"diskwire.8": page8(binary, version, cmds),
             "diskwire.7": page7(version, variables(main_help)),
             "diskwire.bash": completion(binary, cmds)}
    for name, text in files.items():
        with open(os.path.join(out, name), "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
