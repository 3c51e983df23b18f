"""The controller configuration's durations: every spelling the commands take, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from jumpstarter_controller.config import ConfigError, load_config


def test_durations_are_spelled_as_the_commands_take_them(tmp_path: Path) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text(
        "policies:\n- {name: ci, client: bob, max_duration: 1h30m}\n"
        "limits: {max_duration: 90, restart_grace: PT2M}\ndashboard: {session_lifetime: '1d 12h'}\n"
    )
    config = load_config(path)
    assert (config.policies[0].max_duration, config.limits.max_duration) == (5400, 90)
    assert (config.limits.restart_grace, config.dashboard.session_lifetime) == (120, 129600)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2x", "limits.max_duration: Value error, '2x' is not a duration: write 30m, 1h30m, 1d, 90 (seconds), "),
        ("0", "limits.max_duration: Value error, '0': a duration must be more than 0 seconds"),
        ("[1]", "limits.max_duration: Value error, [1] is not a duration: write 30m"),
    ],
)
def test_a_wrong_duration_is_one_line_naming_the_field(tmp_path: Path, value: str, message: str) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text(f"limits: {{max_duration: {value}}}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(f"{path}: {message}"), error.value
