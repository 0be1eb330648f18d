"""The command-line reference of docs/cli.md, rendered from `stochtp.cli`'s argument parser.

docs/cli.md holds the prose and the marker `<!-- cli-reference -->`; this module replaces the
marker with every command's `--help` text, so the reference cannot drift from the parser. It is
an MkDocs hook (`hooks:` in mkdocs.yml: `on_page_markdown` runs as the site is built) and a
script: `python docs/gen_cli.py` prints the reference as Markdown.
"""
import argparse
import os
from contextlib import contextmanager

MARKER = "<!-- cli-reference -->"
HELP_WIDTH = "100"  # argparse wraps help to $COLUMNS; a fixed width keeps the page the same everywhere


def commands(parser):
    """(name, parser) of each subcommand of `parser`, in the order the parser lists them."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen = set()
            for name, subparser in action.choices.items():
                if id(subparser) not in seen:  # an alias names the same parser again
                    seen.add(id(subparser))
                    found.append((name, subparser))
    return found


def option_strings(parser):
    """Every option string (`--out`, `-h`, ...) of `parser`."""
    return [option for action in parser._actions for option in action.option_strings]


@contextmanager
def help_width():
    """argparse's help formatted at HELP_WIDTH columns, without colour."""
    saved = {name: os.environ.get(name) for name in ("COLUMNS", "NO_COLOR")}
    os.environ.update(COLUMNS=HELP_WIDTH, NO_COLOR="1")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def reference():
    """The Markdown reference: `stochtp --help`, then each command's `--help`."""
    from stochtp import cli

    parser = cli.build_parser()
    with help_width():
        sections = [f"### `{parser.prog}`\n\n```text\n{parser.format_help().rstrip()}\n```"]
        sections += [f"### `{sub.prog}`\n\n```text\n{sub.format_help().rstrip()}\n```" for _, sub in commands(parser)]
    return "\n\n".join(sections)


def on_page_markdown(markdown, page, config, files, **kwargs):
    """MkDocs hook: the page's marker replaced by the reference."""
    return markdown.replace(MARKER, reference()) if MARKER in markdown else markdown


if __name__ == "__main__":
    print(reference())
