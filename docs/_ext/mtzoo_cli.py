"""Sphinx extension: the command-line reference, generated from mtzoo's argparse parser.

``.. mtzoo-cli::`` walks :func:`mtzoo.cli.main.build_parser` (no command is run) and emits, for
the top-level parser and each subcommand (nested ones too), a section with the usage line, the
subcommand's one-line help and a definition list of its arguments: option strings with metavar,
help text with ``%(default)s`` expanded, choices and whether it is required.  Help texts are
inserted as plain text (no reST parsing), so they need no escaping.
"""

from __future__ import annotations

import argparse

from docutils import nodes
from sphinx.util.docutils import SphinxDirective


def _subcommands(parser: argparse.ArgumentParser):
    """(name, one-line help, parser) of each subcommand of ``parser``, in definition order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name, ""), sub


def _invocation(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    """``-o RUN_DIR, --workdir RUN_DIR`` or ``input``, as ``--help`` writes it."""
    return formatter._format_action_invocation(action)


def _help(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    if not action.help:
        return ""
    return formatter._expand_help(action)


class MtzooCliDirective(SphinxDirective):
    """Emit the reference of ``mtzoo`` and every subcommand."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from mtzoo.cli.main import build_parser

        parser = build_parser()
        return [self._section(parser, parser.prog, parser.description or "")]

    def _section(self, parser: argparse.ArgumentParser, title: str, summary: str) -> nodes.section:
        section = nodes.section(ids=[nodes.make_id("cli " + title)], names=[nodes.fully_normalize_name(title)])
        section += nodes.title(text=title)
        if summary:
            section += nodes.paragraph(text=summary)
        usage = parser.format_usage().strip()
        section += nodes.literal_block(usage, usage)
        formatter = parser._get_formatter()
        items = nodes.definition_list()
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            term = nodes.term()
            term += nodes.literal(text=_invocation(action, formatter))
            body = nodes.definition()
            text = _help(action, formatter)
            if action.choices is not None:
                text += (" " if text else "") + "Choices: " + ", ".join(str(c) for c in action.choices) + "."
            if action.required and action.option_strings and "required" not in text:
                text += " Required."
            body += nodes.paragraph(text=text.strip())
            items += nodes.definition_list_item("", term, body)
        if len(items):
            section += items
        for name, helptext, sub in _subcommands(parser):
            section += self._section(sub, sub.prog, helptext)
        return section


def setup(app):
    app.add_directive("mtzoo-cli", MtzooCliDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
