"""What each way of running an exporter configuration does with the settings meant for a lab.

``endpoint``, ``token``, ``tls`` and ``grpcOptions`` (registering with a lab controller),
``hooks`` (scripts around each lease, which `jumpstarter.exporter.LeaseSessions` runs) and
``failureDetection`` (the original's self-restart) are read and checked like every other
setting. With ``endpoint``, `jmp exporter run` joins the lab and uses all of them but
``failureDetection``; without it, none of them would take effect. So that no setting is
accepted and then silently ignored, each command says what it does with them:
`jmp exporter run` refuses the ones it would not use (`check_for_serving`), and local mode,
where they have no meaning, names them in one line (`local_mode_note`).
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


def joins_a_lab(config: ExporterConfig) -> bool:
    """Whether `jmp exporter run` registers this exporter with a lab controller (it has an ``endpoint``)."""
    return config.endpoint is not None


def check_for_serving(config: ExporterConfig) -> None:
    """Refuse (ConfigError) the settings `jmp exporter run` would not use, pointing at the first of them.

    With ``endpoint`` the exporter joins a lab: it needs ``token``, and uses the other settings
    but ``failureDetection``. Without it, the settings for a lab would do nothing.
    """
    keys = lab_settings(config)
    if not keys:
        return
    located, _ = config._checked_entries()
    if "failureDetection" in keys:
        raise located.error(
            ("failureDetection", KEY),
            "failureDetection tunes how the original's exporter restarts itself; this one does not restart itself "
            "(it reconnects to its controller for as long as it takes)",
            "remove failureDetection:, and let a service manager restart the exporter "
            "(systemd: Restart=always, as in the lab exporter reference)",
        )
    if joins_a_lab(config):
        if not config.token:
            raise located.error(
                ("endpoint", KEY),
                "an exporter that joins a lab (endpoint:) needs the token the controller issued it",
                "add token: (jmp admin create exporter NAME --out FILE writes endpoint:, token: and tls:)",
            )
        return
    key = keys[0]
    what = "grpcOptions" if key == LEGACY_GRPC_OPTIONS else key
    uses = {
        "token": "the exporter's credential for a lab controller",
        "tls": "how the exporter trusts a lab controller",
        "grpcOptions": "options of the channel to a lab controller",
        "hooks": "scripts run around each lease that a lab controller grants",
    }[what]
    raise located.error(
        (key, KEY),
        f"{key} ({uses}) would never be used: this configuration has no endpoint",
        f"add endpoint: (the controller's HOST:PORT) to join a lab, or remove {key}: to serve the drivers "
        "directly (jmp exporter run --tcp HOST:PORT)",
    )


def _listed(keys: list[str]) -> str:
    return keys[0] if len(keys) == 1 else f"{', '.join(keys[:-1])} and {keys[-1]}"
