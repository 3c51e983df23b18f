"""Regenerate the Python modules of the jumpstarter.v1 and jumpstarter.client.v1 protocols from their .proto files.

    uv run python scripts/generate_protocol.py           # rewrite the generated modules
    uv run python scripts/generate_protocol.py --check   # exit 1 if they are stale

The generated modules are committed so that installing jumpstarter-core needs no
code generator; the test suite runs --check so that they never drift from the .proto files.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from importlib.resources import files
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "packages" / "jumpstarter-core"
PROTO_ROOT = CORE / "proto"
OUTPUT_ROOT = CORE / "src"
# The generated packages, each with the docstring of its __init__.py. jumpstarter.client.v1 (the
# lab controller's ClientService) sits where its .proto import path puts it; it imports only
# jumpstarter.v1 and protobuf, which the import-linter contracts check.
GENERATED_PACKAGES = {
    Path("jumpstarter") / "v1": "Generated code of the jumpstarter.v1 protocol: do not edit.",
    Path("jumpstarter") / "client" / "v1": "Generated code of the jumpstarter.client.v1 protocol: do not edit.",
}


def generate(output_root: Path) -> list[Path]:
    """Run protoc over every .proto file; return the generated files relative to output_root."""
    from grpc_tools import protoc

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    well_known = str(files("grpc_tools") / "_proto")
    out = str(output_root)
    status = protoc.main(
        [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            *protos,
        ]
    )
    if status != 0:
        sys.exit(f"protoc failed with exit status {status}")
    for package, docstring in GENERATED_PACKAGES.items():
        (output_root / package / "__init__.py").write_text(f'"""{docstring}"""\n')
    return _files(output_root)


def _files(root: Path) -> list[Path]:
    return sorted(
        p.relative_to(root) for package in GENERATED_PACKAGES for p in (root / package).iterdir() if p.is_file()
    )


def stale_files() -> list[str]:
    """Generated files that differ from what the .proto files produce now."""
    with tempfile.TemporaryDirectory() as scratch:
        fresh = generate(Path(scratch))
        committed = _files(OUTPUT_ROOT) if all((OUTPUT_ROOT / p).is_dir() for p in GENERATED_PACKAGES) else []
        names = sorted(set(fresh) | set(committed))
        return [
            str(name)
            for name in names
            if name not in fresh
            or name not in committed
            or not filecmp.cmp(Path(scratch) / name, OUTPUT_ROOT / name, shallow=False)
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report stale generated files")
    if parser.parse_args().check:
        stale = stale_files()
        if stale:
            sys.exit("stale generated protocol modules (run scripts/generate_protocol.py): " + ", ".join(stale))
        print("generated protocol modules are up to date")
    else:
        for path in generate(OUTPUT_ROOT):
            print(f"wrote {OUTPUT_ROOT / path}")


if __name__ == "__main__":
    main()
