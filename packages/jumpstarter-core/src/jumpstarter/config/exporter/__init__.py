"""The exporter configuration: which drivers an exporter serves, and where its controller is.

The format is the original jumpstarter's, so its files load unchanged::

    apiVersion: jumpstarter.dev/v1alpha1     # optional, and no other value is accepted
    kind: ExporterConfig                     # optional, and no other value is accepted
    metadata: {namespace: lab, name: demo}   # name is required, namespace is optional: Kubernetes names
    endpoint: grpc.example.com:443           # optional, for a lab: the controller (jmp exporter run joins it)
    token: "..."                             # optional, for a lab
    tls: {ca: "", insecure: false}           # optional, for a lab: ca is the base64 of PEM certificates
    grpcOptions: {grpc.keepalive_time_ms: 20000}   # optional, for a lab (also read as grpcConfig)
    hooks:                                   # optional, for a lab: scripts around each lease (LeaseSessions)
      beforeLease: {script: j power on, timeout: 120, onFailure: warn, exec: /bin/sh}
    failureDetection: {maxRapidFailures: 5, rapidFailureWindow: 60}   # the original's self-restart
    description: Bench 3                     # optional: the description of the root driver
    export:                                  # the drivers, by name
      power:
        type: MockPower                      # the driver class
        description: Main power              # optional: Driver.description
        methods_description: {"on": Switch it on}   # optional: Driver.methods_description
        config: {voltage: 12}                # the driver's settings: its dataclass fields
        children: {}                         # optional: more entries, as under export
      dut:
        children:                            # no type: a Composite that groups its children
          console: {type: PySerial, config: {url: /dev/ttyUSB0}}
          power: {ref: power}                # an alias of the entry at that dotted path

The rules:

* ``type`` is an entry-point name (``MockPower``), a distribution-qualified name
  (``jumpstarter-driver-power:MockPower``), an alias that an installed package declares (the
  original's ``jumpstarter_driver_pyserial.driver.PySerial``) or an import path
  (``jumpstarter_driver_power.driver.MockPower``); see `jumpstarter.registry.resolve_driver`.
* An entry has ``type`` (a driver), or ``children`` without ``type`` (a `Composite`), or ``ref``
  and nothing else (an alias). ``config`` needs ``type``.
* ``ref`` is a dotted path of entry names from the top of ``export`` (``power``, ``dut.console``),
  which may go through other aliases. An alias is its target's very driver object: served under
  both names with one uuid, closed once. A ref to itself, refs that go round in a circle and refs
  that make an entry contain itself (an alias of its own ancestor) are errors.
* The keys of ``config`` are the fields of the driver's dataclass that its constructor takes, except
  those an entry sets in other ways (``uuid``, ``children``, ``description``, ``methods_description``)
  and private ``_names``; ``labels`` and ``log_level`` are settings like the others. A field without
  a default is required.
* ``metadata.name`` is a Kubernetes name (a DNS-1123 subdomain such as ``bench-3``) and
  ``metadata.namespace`` a Kubernetes namespace (a DNS-1123 label): what a lab controller
  accepts, and safe as a directory name.
* Config values are checked against the fields' annotations with pydantic in **lax** mode, the mode
  of the original's pydantic-dataclass drivers, and the constructor gets the converted values:
  "5" becomes 5 for an ``int``, 12 becomes 12.0 for a ``float``, "yes" becomes True for a ``bool``,
  text becomes a ``Path``; but 5.5 is no ``int`` and a number is no ``str`` (quote it). A value whose
  annotation pydantic cannot check goes to the constructor as written.
* The settings for a lab (``endpoint``, ``token``, ``tls``, ``grpcOptions``, read under the
  name ``grpcConfig`` too, ``hooks`` and ``failureDetection``) are read and checked; with
  ``endpoint``, ``jmp exporter run`` joins the lab and uses them (`joins_a_lab`), and
  `check_for_serving` refuses those it would not use; `local_mode_note` names them for
  ``jmp shell --exporter-config``.
* A top-level section written empty (``tls:``, ``hooks:``, ``export:``...) is one left out.
* Unknown keys are errors everywhere, with the keys allowed there and the closest one. YAML reads an
  unquoted ``on``, ``off``, ``yes`` or ``no`` as a boolean: quote such keys (``"on": ...``).

The module is a face over private modules, one per job: ``_schema`` (the top-level fields),
``_entries`` (entries and refs), ``_settings`` (a driver's settings and an entry's config),
``_build`` (creating the drivers) and ``_usage`` (what each command does with the lab settings).

Loading and building are two steps. `load_exporter_config` reads the file and checks everything that
needs no driver (the top-level fields, the shape of the entries, the refs), so tools can read a
configuration whose drivers are not installed. `ExporterConfig.build` imports the driver classes and
checks every entry's config, and only when all are right creates a new driver tree: a `Composite` root
whose children are the ``export`` entries. The exporter builds a tree for each client session, so a
build never reuses a driver; building once at start-up finds every mistake early. When a constructor
raises, the build stops and closes the drivers it created.

The file is read as ``jumpstarter.config.yaml`` reads every configuration: once, bounded by its
size whatever its aliases expand to, and no deeper than a hundred levels.

Every mistake raises a `ConfigError` whose message starts with ``file:line:column: at dotted.path``
and ends with how to fix it.
"""

from __future__ import annotations

import os
from pathlib import Path

from jumpstarter.config._connection import TLSConfig
from jumpstarter.config.exporter._schema import (
    API_VERSION,
    KIND,
    ExporterConfig,
    FailureDetectionConfig,
    HookConfig,
    HooksConfig,
    exporter_config,
)

# For the command line, not in __all__ (the public API): re-exported by name.
from jumpstarter.config.exporter._usage import check_for_serving as check_for_serving
from jumpstarter.config.exporter._usage import joins_a_lab as joins_a_lab
from jumpstarter.config.exporter._usage import lab_settings as lab_settings
from jumpstarter.config.exporter._usage import local_mode_note as local_mode_note
from jumpstarter.config.meta import ObjectMeta
from jumpstarter.config.yaml import ConfigError, load_yaml


def load_exporter_config(path: str | os.PathLike[str]) -> ExporterConfig:
    """Read the exporter configuration file at `path`.

    Checks everything but the drivers themselves, which `ExporterConfig.build` checks. Raises ConfigError.
    """
    return exporter_config(load_yaml(Path(path)))


def parse_exporter_config(text: str, *, name: str = "<string>") -> ExporterConfig:
    """`load_exporter_config` for YAML text; `name` stands for the file in messages."""
    return exporter_config(load_yaml(text, name=name))


__all__ = [
    "API_VERSION",
    "KIND",
    "ConfigError",
    "ExporterConfig",
    "FailureDetectionConfig",
    "HookConfig",
    "HooksConfig",
    "ObjectMeta",
    "TLSConfig",
    "load_exporter_config",
    "parse_exporter_config",
]
