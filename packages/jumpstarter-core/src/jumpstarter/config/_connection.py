"""How an exporter or a client reaches its lab controller: ``endpoint`` and ``tls``, the same
rules in both kinds of configuration file."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

ENDPOINT_RULE: Final = "the controller's gRPC address, HOST:PORT (such as grpc.lab.example.com:443)"
CA_RULE: Final = "the base64 of the PEM certificates to trust, as `base64 -w0 ca.crt` prints it; empty for the system's"


def _check_endpoint(endpoint: str) -> str:
    if "://" in endpoint:
        raise ValueError(f"a gRPC address has no scheme: write {endpoint.split('://', 1)[1].rstrip('/')}")
    host, separator, port = endpoint.rpartition(":")
    if not separator or not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("not HOST:PORT")
    return endpoint


def _check_ca(ca: str) -> str:
    if not ca:
        return ca
    try:
        pem = base64.b64decode(ca, validate=True)
    except (binascii.Error, ValueError):
        hint = ": write the base64 of the PEM file" if "-----BEGIN" in ca else ""
        raise ValueError(f"not base64{hint}") from None
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise ValueError("its base64 holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    return ca


Endpoint = Annotated[str, AfterValidator(_check_endpoint)]


class Section(BaseModel):
    """A section of a configuration file: unknown keys refused; Python code may use the field
    names, a file must use the aliases (`jumpstarter.config.yaml.Located.validate` sees to it)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class TLSConfig(Section):
    """How an exporter or a client trusts its controller and router (with ``endpoint``)."""

    ca: Annotated[str, AfterValidator(_check_ca)] = Field("", description=CA_RULE)
    insecure: bool = Field(
        False, description="true or false: true trusts whatever certificate the controller shows (still TLS)"
    )


__all__ = ["CA_RULE", "ENDPOINT_RULE", "Endpoint", "Section", "TLSConfig"]
