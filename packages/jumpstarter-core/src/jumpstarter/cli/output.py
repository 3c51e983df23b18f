"""How `jmp` and `j` speak on stderr: ``PROGRAM: MESSAGE`` and ``PROGRAM: error: MESSAGE``, one line each.

Click's own errors are put in the same form (``jmp: error: no such option --exporter-confg:
did you mean --exporter-config? (see 'jmp shell --help')``) instead of click's usage block
and ``Error:`` line, so that every mistake reads alike, whichever command made it.
"""

from __future__ import annotations

from contextlib import suppress

import click


def say(program: str, message: str) -> None:
    """One line ``PROGRAM: MESSAGE`` on stderr (nothing if stderr is gone: the exit code tells)."""
    with suppress(OSError, ValueError):
        click.echo(f"{program}: {message}", err=True)


def error(program: str, message: str) -> None:
    say(program, f"error: {message}")


def usage_message(problem: click.UsageError) -> str:
    """A usage error in one line, with the option suggested and where help is."""
    if isinstance(problem, click.NoSuchOption):
        message = f"no such option {problem.option_name}"
        close = _close_options(problem.option_name, problem.ctx)
        if close:
            message += f": did you mean {' or '.join(close)}?"
    else:
        message = problem.format_message()
    if problem.ctx is not None:
        message += f" (see '{problem.ctx.command_path} --help')"
    return message


def _close_options(name: str, ctx: click.Context | None) -> list[str]:
    """The documented options of the command spelled most like `name` (hidden ones are never offered)."""
    if ctx is None:
        return []
    import difflib  # only for a mistake: `j` starts without it

    options = [
        option
        for parameter in ctx.command.get_params(ctx)
        if isinstance(parameter, click.Option) and not parameter.hidden
        for option in (*parameter.opts, *parameter.secondary_opts)
    ]
    return difflib.get_close_matches(name, options, n=2, cutoff=0.6)


class Program(click.Group):
    """A click group whose errors, when run as a program, are one ``PROGRAM: error:`` line.

    Exit codes stay click's: 2 for usage errors, the exception's code for the others, 130
    when interrupted.
    """

    # click types main() with overloads on standalone_mode (NoReturn when true); this one may return.
    def main(  # type: ignore[override]
        self,
        args: list[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: object,
    ) -> object:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        program = prog_name or self.name or "jmp"
        try:
            result = super().main(args, program, complete_var, standalone_mode=False, **extra)
        except click.UsageError as problem:
            error(program, usage_message(problem))
            raise SystemExit(problem.exit_code) from None
        except click.ClickException as problem:
            error(program, problem.format_message())
            raise SystemExit(problem.exit_code) from None
        except click.Abort:
            say(program, "interrupted")
            raise SystemExit(130) from None
        raise SystemExit(result if isinstance(result, int) else 0)
