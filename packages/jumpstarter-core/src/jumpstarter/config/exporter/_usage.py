"""What each way of running an exporter configuration does with the settings meant for a lab.

``endpoint``, ``token``, ``tls`` and ``grpcOptions`` (registering with a lab controller),
``hooks`` (scripts around each lease, which `jumpstarter.exporter.LeaseSessions` runs) and
``failureDetection`` (the original's self-restart) are read and checked like every other
setting, but `jmp exporter run` does not register with a controller yet, so none of them
would take effect. So that no
setting is accepted and then silently ignored, each command says what it does with them:
`jmp exporter run` refuses them (`check_for_serving`), and local mode, where they have no
meaning, names them in one line (`local_mode_note`).
"""

from __future__ import annotations

from jumpstarter.config.exporter._schema import LEGACY_GRPC_OPTIONS, ExporterConfig
from jumpstarter.config.yaml import KEY

_REGISTRATION = ("endpoint", "token", "tls")


def lab_settings(config: ExporterConfig) -> list[str]:
    """The settings for a lab that `config` writes, by the key the file uses, in the file's order."""
    written = {
        "endpoint": config.endpoint is not None,
        "token": config.token is not None,
        "tls": "tls" in config.model_fields_set,
        "grpcOptions": bool(config.grpc_options),
        "hooks": config.hooks.before_lease is not None or config.hooks.after_lease is not None,
        "failureDetection": "failure_detection" in config.model_fields_set,
    }
    located, _ = config._checked_entries()
    in_file = [key for key in located.data if isinstance(key, str)]  # grpcOptions may be written grpcConfig
    as_fields = ["grpcOptions" if key == LEGACY_GRPC_OPTIONS else key for key in in_file]
    order = [*in_file, *(key for key in written if key not in as_fields)]
    return [key for key in order if written.get("grpcOptions" if key == LEGACY_GRPC_OPTIONS else key)]


def local_mode_note(config: ExporterConfig) -> str | None:
    """The line `jmp shell --exporter-config` prints about the settings local mode does not use, or None."""
    keys = lab_settings(config)
    if not keys:
        return None
    located, _ = config._checked_entries()
    verb = "is" if len(keys) == 1 else "are"
    return f"{located.file}: {_listed(keys)} {verb} not used in local mode: they are for an exporter in a lab"


def check_for_serving(config: ExporterConfig) -> None:
    """Refuse (ConfigError) the settings `jmp exporter run` does not use yet, pointing at the first of them."""
    keys = lab_settings(config)
    if not keys:
        return
    key = keys[0]
    located, _ = config._checked_entries()
    if key in _REGISTRATION:
        raise located.error(
            (key, KEY),
            f"{_listed([k for k in keys if k in _REGISTRATION])}: registering with a lab controller is not "
            "supported by this version yet; it serves on --unix and --tcp only",
            "remove endpoint:, token: and tls: to serve the drivers directly (jmp exporter run --tcp HOST:PORT)",
        )
    if key in ("grpcOptions", LEGACY_GRPC_OPTIONS):
        raise located.error(
            (key, KEY),
            f"{key} are options of the channel to a lab controller, which this version does not open yet",
            f"remove {key}:",
        )
    if key == "hooks":
        raise located.error(
            (key, KEY),
            "hooks run around each lease that a lab controller grants (jumpstarter.exporter.LeaseSessions runs them); "
            "jmp exporter run does not register with a controller yet, so they would never run",
            "remove hooks: to serve the drivers directly; run such scripts in jmp shell instead "
            "(jmp shell --host ADDRESS -- j power on)",
        )
    raise located.error(
        (key, KEY),
        "failureDetection tunes how the original's exporter restarts itself; this one does not restart itself",
        "remove failureDetection:, and let a service manager restart the exporter "
        "(systemd: Restart=on-failure, with StartLimitBurst= and StartLimitIntervalSec=)",
    )


def _listed(keys: list[str]) -> str:
    return keys[0] if len(keys) == 1 else f"{', '.join(keys[:-1])} and {keys[-1]}"
