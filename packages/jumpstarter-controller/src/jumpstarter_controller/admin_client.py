"""The admin's side of the admin service: a TLS channel with the admin credential, and the files
`jmp admin create` writes (the original's ClientConfig and ExporterConfig YAML)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml

from jumpstarter.common.tls import check_pem_certificates, write_secret
from jumpstarter_controller.admin_service import METHOD

API_VERSION = "jumpstarter.dev/v1alpha1"
CALL_SECONDS = 30.0


class AdminError(Exception):
    """A refused or failed admin call: one line saying why."""


@dataclass(frozen=True)
class Connection:
    endpoint: str
    ca_pem: bytes
    token: str

    @classmethod
    def from_state_dir(cls, state_dir: Path) -> Connection:
        from jumpstarter_controller.server import ENDPOINT_FILE
        from jumpstarter_controller.state import StateDir

        state = StateDir(state_dir, create=False)
        endpoint_file = state_dir / ENDPOINT_FILE
        if not endpoint_file.exists() or not state.admin_token_path.exists():
            raise AdminError(f"no controller has run with the state directory {state_dir}: start one with "
                             f"jmp controller run --state-dir {state_dir}")  # fmt: skip
        return cls(endpoint_file.read_text().strip(), state.ca_path.read_bytes(),
                   state.admin_token_path.read_text().strip())  # fmt: skip

    @classmethod
    def remote(cls, endpoint: str, ca_file: Path, token_file: Path) -> Connection:
        try:
            ca = ca_file.read_bytes()
            token = token_file.read_text().strip()
        except OSError as error:
            raise AdminError(f"{error.filename}: {error.strerror}") from None
        try:
            check_pem_certificates(ca, f"--tls-ca {ca_file}")
        except ValueError as error:
            raise AdminError(str(error)) from None
        return cls(endpoint, ca, token)

    def call(self, op: str, **fields: Any) -> Any:
        credentials = grpc.ssl_channel_credentials(root_certificates=self.ca_pem)
        with grpc.secure_channel(self.endpoint, credentials) as channel:
            method: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(METHOD)
            try:
                answer = method(
                    json.dumps({"op": op, **fields}).encode(),
                    metadata=(("authorization", f"Bearer {self.token}"),),
                    timeout=CALL_SECONDS,
                )
            except grpc.RpcError as error:
                code = error.code()
                if code == grpc.StatusCode.UNAVAILABLE:
                    raise AdminError(f"cannot reach the controller at {self.endpoint}: is it running?") from None
                raise AdminError(str(error.details())) from None
        return json.loads(answer)


def write_config(
    path: Path, kind: str, connection: Connection, namespace: str, name: str, token: str,
    allow: list[str] | None = None, unsafe: bool = False,
) -> None:  # fmt: skip
    """The original's ClientConfig (with drivers) or ExporterConfig (with an empty export:), 0600."""
    document: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "ClientConfig" if kind == "client" else "ExporterConfig",
        "metadata": {"namespace": namespace, "name": name},
        "endpoint": connection.endpoint,
        "tls": {"ca": base64.b64encode(connection.ca_pem).decode(), "insecure": False},
        "token": token,
        "grpcOptions": {},
    }
    if kind == "client":
        document["drivers"] = {"allow": list(allow or []), "unsafe": unsafe}
    else:
        document["export"] = {}
    write_secret(path, yaml.safe_dump(document, sort_keys=False).encode())
