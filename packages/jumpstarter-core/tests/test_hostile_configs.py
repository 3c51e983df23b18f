"""Configuration files made to hurt: each gets a located, one-screen error and exit 2 from both commands
that read one, in bounded time and memory, never a traceback.

Each command runs in its own process under an address-space limit, so that a file that would take all
memory (an alias bomb expands 600 bytes into a billion values) fails the test instead of the machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from jumpstarter.config.exporter import load_exporter_config, parse_exporter_config
from jumpstarter.config.yaml import MAX_ALIAS_REPEATS, MAX_DEPTH, ConfigError, load_yaml

BIN = Path(sys.executable).parent
MEMORY_LIMIT = 1 << 30  # bytes of address space: gRPC's threads need some; an alias bomb needs far more
TIMEOUT = 60.0


def alias_bomb() -> bytes:
    """9 levels of 10 aliases each: about 600 bytes that expand to 10**9 values."""
    lines = [
        "metadata: {name: bench}",
        "export: {}",
        "bomb:",
        "  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]",
    ]
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"  {name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    return ("\n".join(lines) + "\n").encode()


def deep_children(levels: int) -> bytes:
    """`levels` entries, each the only child of the one before: export: {d0: {children: {d1: ...}}}."""
    opening = "".join(f"{{d{level}: {{children: " for level in range(levels))
    return f"metadata: {{name: bench}}\nexport: {opening}{{}}{'}}' * levels}\n".encode()


# file contents -> (the start of the error's first line, a word of its fix line)
HOSTILE: dict[str, tuple[bytes, str, str]] = {
    "alias-bomb": (alias_bomb(), r"8:38: at bomb\.e\[7\]: aliases repeat more than 100000 values", "fewer aliases"),
    "latin-1": (
        "metadata: {name: bench}\ndescription: Caf\xe9 bench\n".encode("latin-1"),
        r"2:17: not UTF-8 text: byte 0xe9",
        "save the file as UTF-8",
    ),
    "utf-16": ("metadata: {name: bench}\n".encode("utf-16"), r"1:1: the file is UTF-16 text", "iconv -f UTF-16"),
    "utf-16-without-bom": (
        "metadata: {name: bench}\n".encode("utf-16-le"),
        r"1:2: the file holds NUL bytes",
        "save it as UTF-8",
    ),
    "recursive-anchor": (
        b"metadata: {name: bench}\nexport: &loop\n  dut:\n    children: *loop\n",
        r"4:15: at export\.dut\.children: this alias stands for a value that contains it",
        "outside its anchor",
    ),
    "deep-list": (
        b"metadata: {name: bench}\ndescription: " + b"[" * 10_000 + b"]" * 10_000 + b"\n",
        rf"2:{14 + MAX_DEPTH - 1}: values nest more than {MAX_DEPTH} levels deep",
        "brackets that are never closed",
    ),
    "600-levels-of-children": (deep_children(600), r"2:\d+: values nest more than 100 levels deep", "nesting"),
    "name-that-climbs-out": (
        b"metadata: {name: ../../../tmp/x}\n",
        r"1:18: at metadata\.name: metadata\.name is '\.\./\.\./\.\./tmp/x': not a Kubernetes name",
        "Kubernetes name",
    ),
    "absolute-name": (b"metadata: {name: /etc}\n", r"1:18: at metadata\.name: .* not a Kubernetes name", "bench-3"),
}


# Sets the limit, then becomes the command. Not preexec_fn: that makes Python fork this process, and
# gRPC, loaded here by other tests, aborts in a forked child; without it Python spawns the child at once.
LIMITED = (
    "import os, resource, sys; "
    "resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]),) * 2); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)


def run(argv: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_STATE_HOME": str(home / "state"), "HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-c", LIMITED, str(MEMORY_LIMIT), *argv],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        cwd=home,
        check=False,
    )


COMMANDS: dict[str, Callable[[Path], list[str]]] = {
    "jmp exporter run": lambda config: [
        str(BIN / "jmp"),
        "exporter",
        "run",
        "--config",
        str(config),
        "--tcp",
        "127.0.0.1:0",
    ],
    "jmp shell": lambda config: [str(BIN / "jmp"), "shell", "--exporter-config", str(config), "--", "true"],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_file_gets_a_located_error_and_exit_2(case: str, command: str, tmp_path: Path) -> None:
    content, location, fix = HOSTILE[case]
    config = tmp_path / "exporter.yaml"
    config.write_bytes(content)
    result = run(COMMANDS[command](config), tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert re.search(rf"{re.escape(str(config))}:{location}", result.stderr), result.stderr
    error_lines = result.stderr.strip().splitlines()
    assert len(error_lines) <= 3 and all(len(line) < 300 for line in error_lines), result.stderr  # one screen
    assert error_lines[-1].startswith("  fix: ") and fix in error_lines[-1]
    # Nothing was written for the exporter: a name that climbs out of the state directory never reaches it.
    assert not (tmp_path / "state").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["exporter.yaml"]


def test_a_file_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    readers = []
    original = yaml.reader.Reader.__init__

    def counting(self: yaml.reader.Reader, stream: object) -> None:
        readers.append(stream)
        original(self, stream)

    monkeypatch.setattr(yaml.reader.Reader, "__init__", counting)
    parse_exporter_config("metadata: {name: bench}\nexport:\n  a: {type: Composite}\n  b: {ref: a}\n")
    assert len(readers) == 1


ANCHORS = """\
metadata: {name: bench}
export:
  a: &common {type: Composite, description: shared}
  b:
    <<: *common
    description: its own
  c: *common
"""


def test_anchors_aliases_and_merge_keys_still_work() -> None:
    root = parse_exporter_config(ANCHORS, name="anchors.yaml").build()
    assert {name: driver.description for name, driver in root.children.items()} == {
        "a": "shared",
        "b": "its own",  # a key beside a merge key wins, as YAML says
        "c": "shared",
    }


def test_an_error_inside_an_alias_points_at_the_alias() -> None:
    text = "metadata: {name: bench}\ndescription: &text Bench\nexport:\n  a: {type: Composite}\n  b: {ref: *text}\n"
    with pytest.raises(ConfigError) as raised:
        parse_exporter_config(text, name="alias.yaml").build()
    assert str(raised.value).startswith("alias.yaml:5:12: at export.b.ref: ref 'Bench' of 'b' leads nowhere")


def test_aliases_may_repeat_up_to_the_limit() -> None:
    # Four levels (a to d) of ten aliases each repeat 110 + 1,110 + 11,110 values: under the limit.
    four_levels = "\n".join(alias_bomb().decode().splitlines()[2:7]) + "\n"
    data = load_yaml(four_levels, name="small.yaml").data
    assert len(data["bomb"]["d"]) == 10 and data["bomb"]["d"][9][9][9][9] == "lol"
    assert MAX_ALIAS_REPEATS > 12_330
    # A fifth repeats 11,111 values with each alias: the eighth goes over.
    with pytest.raises(ConfigError, match=r"^small.yaml:6:38: at bomb.e\[7\]: aliases repeat more than"):
        load_yaml("\n".join(alias_bomb().decode().splitlines()[2:8]) + "\n", name="small.yaml")


@pytest.mark.parametrize(
    ("text", "location", "fix"),
    [
        (
            "export:\n  power:\n    type: MockPower\n   config: {}\n",
            "exporter.yaml:4:4: not valid YAML: expected <block end>, but found '<block mapping start>' "
            "(while parsing a block mapping at line 2)",
            "this line is indented differently from the lines above it",
        ),
        (
            "export:\n  power:\n    type: MockPower\n      config: {}\n",
            "exporter.yaml:4:13: not valid YAML: mapping values are not allowed here",
            "indent this line like the other keys of its mapping",
        ),
        ("export:\n\tpower: {}\n", "exporter.yaml:2:1: not valid YAML: found character '\\t'", "never tabs"),
        ("export: {a: 1\n", "exporter.yaml:2:1: not valid YAML: expected ',' or '}'", "close the bracket"),
        ('description: "abc\n', "exporter.yaml:2:1: not valid YAML: found unexpected end", "close the quote"),
        ("a: *nowhere\n", "exporter.yaml:1:4: not valid YAML: found undefined alias", "define the anchor"),
        ("a: 1\n---\nb: 2\n", "exporter.yaml:2:1: not valid YAML: but found another document", "one YAML document"),
        ("a: \x01\n", "exporter.yaml:1:4: not valid YAML: the character #x0001 is not allowed here", "remove it"),
    ],
)
def test_yaml_mistakes_say_how_to_fix_them(text: str, location: str, fix: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_exporter_config(text, name="exporter.yaml")
    first, _, fix_line = str(raised.value).partition("\n  fix: ")
    assert first.startswith(location)
    assert fix in fix_line


def test_a_file_with_a_utf8_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "exporter.yaml"
    path.write_bytes("\ufeffmetadata: {name: bench}\ndescription: Café\n".encode())
    assert load_exporter_config(path).description == "Café"
