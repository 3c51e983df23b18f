"""The command lines: `jmp` (`jumpstarter.cli.jmp`) and `j` (`jumpstarter.cli.j`).

This package imports nothing heavy, so that `j`, which starts for every driver command,
does not load the commands of `jmp`.
"""

import os

# gRPC's core logs on stderr by itself: a refused TLS handshake at INFO, a certificate not
# valid for the host name or a port it cannot bind at ERROR. The commands report each such
# failure themselves, in one line that says what to do, so gRPC's own lines are off (set
# GRPC_VERBOSITY to see them). Set before either command imports grpc.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
