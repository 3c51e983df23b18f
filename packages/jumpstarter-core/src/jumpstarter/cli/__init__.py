"""The command lines: `jmp` (`jumpstarter.cli.jmp`) and `j` (`jumpstarter.cli.j`).

This package imports nothing heavy, so that `j`, which starts for every driver command,
does not load the commands of `jmp`.
"""

import os

# gRPC's core logs a refused TLS handshake (and more) on stderr at level INFO; the commands
# report such failures themselves, in one line. Set before either command imports grpc.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
