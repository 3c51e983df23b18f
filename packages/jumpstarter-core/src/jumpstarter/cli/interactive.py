"""The environment of what `jmp shell` runs: this environment's commands first, whatever the rc files do.

Inside `jmp shell`, `j`, `python` and `pytest` must be the ones of the Python environment
that runs `jmp`: its scripts reach the exporter, its packages hold the driver clients and
the pytest plugin. A command gets that environment's script directory first on its
``PATH`` (so ``.venv/bin/jmp shell ... -- j power on`` works without activating it). An
interactive ``$SHELL`` reads its rc files after that, and those of most Python developers
put another ``python`` first (pyenv, conda, asdf): so the shell is started with an rc file
of ours that reads the user's own, then puts the directory first again and marks the
prompt (``(jmp NAME)``). bash, zsh, fish and POSIX shells (dash, ksh, through ``ENV``) are
known; any other shell only gets the ``PATH`` of its environment.
"""

from __future__ import annotations

import os
import shlex
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

# The user's own values of the variables the wrappers take over, for the wrappers to restore.
_USER_ZDOTDIR = "JMP_USER_ZDOTDIR"
_USER_ENV = "JMP_USER_ENV"


def environment_bin_dirs() -> list[str]:
    """The directories of this Python and of its environment's scripts (`j`, `pytest`...)."""
    candidates = [os.path.dirname(sys.executable), sysconfig.get_path("scripts")]
    return [directory for directory in dict.fromkeys(candidates) if directory and os.path.isdir(directory)]


def command_environment(base: dict[str, str]) -> dict[str, str]:
    """`base` with this environment's directories first on PATH (and VIRTUAL_ENV when it is one)."""
    env = dict(base)
    directories = environment_bin_dirs()
    rest = [entry for entry in env.get("PATH", os.defpath).split(os.pathsep) if entry and entry not in directories]
    env["PATH"] = os.pathsep.join([*directories, *rest])
    if sys.prefix != sys.base_prefix:  # a virtual environment: say so, as its activation would
        env["VIRTUAL_ENV"] = sys.prefix
    return env


@dataclass(frozen=True)
class ShellStart:
    """How to start an interactive shell: its arguments and environment."""

    argv: list[str]
    env: dict[str, str]


def interactive_shell(shell: str, env: dict[str, str], label: str, directory: Path) -> ShellStart:
    """Start `shell` so that after its rc files, PATH starts with this environment's directories.

    `env` is the command's environment (see `command_environment`); `label` goes in the
    prompt, ``(jmp LABEL)``; the rc files of ours are written in `directory`, a private
    directory that lives as long as the shell.
    """
    name = os.path.basename(shell)
    path_first = os.pathsep.join(environment_bin_dirs())
    prompt = f"(jmp {label}) "
    if name == "bash":
        rc = directory / "bashrc"
        rc.write_text(_BASH.format(path=shlex.quote(path_first), prompt=shlex.quote(prompt)))
        return ShellStart([shell, "--rcfile", str(rc)], env)
    if name == "zsh":
        zdotdir = directory / "zsh"
        zdotdir.mkdir()
        (zdotdir / ".zshenv").write_text(_ZSHENV.format(ours=shlex.quote(str(zdotdir))))
        (zdotdir / ".zshrc").write_text(_ZSHRC.format(path=shlex.quote(path_first), prompt=shlex.quote(prompt)))
        zsh_env = {**env, "ZDOTDIR": str(zdotdir)}
        if "ZDOTDIR" in env:
            zsh_env[_USER_ZDOTDIR] = env["ZDOTDIR"]
        return ShellStart([shell], zsh_env)
    if name == "fish":
        rc = directory / "config.fish"
        directories = " ".join(shlex.quote(entry) for entry in environment_bin_dirs())
        rc.write_text(_FISH.format(directories=directories, prompt=shlex.quote(prompt)))
        return ShellStart([shell, "--init-command", f"source {shlex.quote(str(rc))}"], env)
    if name in ("sh", "dash", "ash", "ksh", "mksh", "posh", "yash"):
        rc = directory / "shrc"
        rc.write_text(_POSIX.format(path=shlex.quote(path_first), prompt=shlex.quote(prompt), user_env=_USER_ENV))
        sh_env = {**env, "ENV": str(rc)}
        if "ENV" in env:
            sh_env[_USER_ENV] = env["ENV"]
        return ShellStart([shell], sh_env)
    return ShellStart([shell], env)


# Each wrapper reads the user's rc file as the shell would have, then puts this
# environment first on PATH and marks the prompt, also when a prompt command rewrites it.
_BASH = """\
# Written by jmp shell: the user's ~/.bashrc, then this environment's commands first.
if [ -f "$HOME/.bashrc" ]; then . "$HOME/.bashrc"; fi
PATH={path}:"$PATH"
hash -r
__jmp_prompt() {{ case "$PS1" in {prompt}*) ;; *) PS1={prompt}"$PS1" ;; esac; }}
__jmp_prompt
PROMPT_COMMAND="${{PROMPT_COMMAND:+$PROMPT_COMMAND;}}__jmp_prompt"
"""

_ZSHENV = """\
# Written by jmp shell: zsh reads this first (ZDOTDIR points here); the user's .zshenv next.
if [ -n "${{JMP_USER_ZDOTDIR+x}}" ]; then ZDOTDIR="$JMP_USER_ZDOTDIR"; else unset ZDOTDIR; fi
if [ -f "${{ZDOTDIR:-$HOME}}/.zshenv" ]; then . "${{ZDOTDIR:-$HOME}}/.zshenv"; fi
__jmp_user_zdotdir="${{ZDOTDIR-}}"
ZDOTDIR={ours}
"""

_ZSHRC = """\
# Written by jmp shell: the user's .zshrc, then this environment's commands first.
if [ -n "$__jmp_user_zdotdir" ]; then ZDOTDIR="$__jmp_user_zdotdir"; else unset ZDOTDIR; fi
unset __jmp_user_zdotdir JMP_USER_ZDOTDIR
if [ -f "${{ZDOTDIR:-$HOME}}/.zshrc" ]; then . "${{ZDOTDIR:-$HOME}}/.zshrc"; fi
PATH={path}:"$PATH"
rehash
__jmp_prompt() {{ case "$PS1" in {prompt}*) ;; *) PS1={prompt}"$PS1" ;; esac; }}
__jmp_prompt
autoload -Uz add-zsh-hook 2>/dev/null && add-zsh-hook precmd __jmp_prompt
"""

_FISH = """\
# Written by jmp shell: fish read the user's configuration already; this environment's commands first.
set -gx PATH {directories} $PATH
if functions -q fish_prompt
    functions -c fish_prompt __jmp_user_prompt
else
    function __jmp_user_prompt; echo -n '> '; end
end
function fish_prompt
    echo -n {prompt}
    __jmp_user_prompt
end
"""

_POSIX = """\
# Written by jmp shell: the user's $ENV file, then this environment's commands first.
if [ -n "${{{user_env}:-}}" ]; then ENV="${user_env}"; unset {user_env}; . "$ENV"; else unset ENV; fi
PATH={path}:"$PATH"
PS1={prompt}"${{PS1-\\$ }}"
"""
