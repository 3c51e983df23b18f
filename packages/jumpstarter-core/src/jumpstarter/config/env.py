"""Environment variables that jumpstarter reads."""

# Comma-separated glob patterns of client classes a client may import, or UNSAFE for any.
JMP_DRIVERS_ALLOW = "JMP_DRIVERS_ALLOW"
# "true": allow any client class (the same as JMP_DRIVERS_ALLOW=UNSAFE).
JMP_DRIVERS_UNSAFE = "JMP_DRIVERS_UNSAFE"
# Where the client configuration lives (default: $XDG_CONFIG_HOME/jumpstarter/client.yaml).
JMP_CLIENT_CONFIG = "JMP_CLIENT_CONFIG"
