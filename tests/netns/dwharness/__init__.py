"""dwharness: two hosts as network namespaces, cuts, waits and transfers for
diskwire's integration tests, its demo and its benchmark."""

import os as _os

# ip, iptables and ss live in sbin, which Bazel's strict test PATH leaves out.
_path = _os.environ.get("PATH", "/usr/bin:/bin").split(":")
_os.environ["PATH"] = ":".join(_path + [d for d in ("/usr/sbin", "/sbin")
                                         if d not in _path])

from .cleanup import cleanup_all
from .cuts import Cuts
from .hosts import TwoHosts, list_namespaces, lun_available, own_namespaces
from .procs import Proc, clean_env
from .requirements import missing_requirement, skip_unless_netns
from .transfer import (MiB, NcTransfer, hold_data_in_sender, make_data, pacer_argv,
                       sha256_file, wait_sender_fin)
from .wait import (WaitTimeout, file_size, still_running_after, wait_exit,
                   wait_file_size, wait_for, wait_stable)
