"""The scripts' command lines: tyro over a settings dataclass, each field's docstring its help, and CleanRL's names
for four flags.

tyro (1.0) reads the indented continuation lines of a multi-line field docstring as new paragraphs, so ``--help``
broke lines where the source does and then wrapped them again, unevenly. :func:`cli` gives each field its docstring
flowed into one paragraph as dataclass ``help`` metadata, which tyro takes instead of the docstring. tyro prints the
description as given, but joins each line to the one before unless it starts with a space: :func:`cli` wraps its
prose to the terminal and indents it.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import shutil
import textwrap
import types
from typing import get_type_hints

from oversight_rl.engine.config import TrainConfig, flag_name

CLEANRL_FLAGS = {
    "--total-timesteps": ("--total-env-steps",),
    "--env-id": ("--env",),
    "--learning-rate": ("--lr",),
    "--cuda": ("--device", "cuda"),
    "--no-cuda": ("--device", "cpu"),
}
"""CleanRL's flags and the arguments of this package's flags they stand for: each is rewritten before parsing, so
a run records only this package's settings."""


def canonical_args(argv: list[str]) -> list[str]:
    """``argv`` with CleanRL's flags (:data:`CLEANRL_FLAGS`) replaced by this package's, ``--flag=value`` too."""
    args = []
    for token in argv:
        flag, equals, value = token.partition("=")
        if flag in CLEANRL_FLAGS and (not equals or len(CLEANRL_FLAGS[flag]) == 1):
            args += [CLEANRL_FLAGS[flag][0] + equals + value, *CLEANRL_FLAGS[flag][1:]]
        else:
            args.append(token)
    return args


def cli(cls: type, argv: list[str], **kwargs):
    """``tyro.cli(cls, args=argv, **kwargs)``, with CleanRL's flag names accepted and every help text one paragraph."""
    import tyro

    flow_help(cls)
    if kwargs.get("description"):
        kwargs["description"] = flowed_description(kwargs["description"])
    return tyro.cli(cls, args=canonical_args(argv), **kwargs)


def flowed_description(text: str) -> str:
    """A script's docstring as --help shows it: the first paragraph and indented blocks (examples) as written, every
    other paragraph wrapped to the terminal and indented, so that tyro keeps its line breaks."""
    width = min(shutil.get_terminal_size().columns, 120)
    first, *rest = inspect.cleandoc(text).split("\n\n")
    wrap = textwrap.TextWrapper(width, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False)
    flowed = [p if p.startswith(" ") or "\n " in p else wrap.fill(" ".join(p.split())) for p in rest]
    return "\n\n".join([first, *flowed])


def flow_help(cls: type) -> None:
    """Give each field of the dataclass ``cls`` (and of the dataclasses it holds) its docstring, on one paragraph, as
    its ``help`` metadata; a training setting's names the CleanRL flags that stand for it."""
    docs = field_docstrings(cls)
    for field in dataclasses.fields(cls):
        if field.name in docs:
            note = cleanrl_note(field.name) if issubclass(cls, TrainConfig) else ""
            help_text = " ".join(docs[field.name].split()) + note
            field.metadata = types.MappingProxyType({**field.metadata, "help": help_text})
    for hint in get_type_hints(cls).values():
        if dataclasses.is_dataclass(hint):
            flow_help(hint)


def cleanrl_note(setting: str) -> str:
    """`` CleanRL's --cuda is --device cuda, ...`` for the CleanRL flags that stand for ``setting``; empty if none."""
    named = [f"{alias} is {' '.join(args)}" for alias, args in CLEANRL_FLAGS.items() if args[0] == flag_name(setting)]
    return f" CleanRL's {', '.join(named)}." if named else ""


def field_docstrings(cls: type) -> dict[str, str]:
    """The docstring under each field of the dataclass ``cls`` and of its dataclass bases (a subclass's wins)."""
    docs = {}
    for base in reversed([base for base in cls.__mro__ if dataclasses.is_dataclass(base)]):
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(base))).body[0].body
        except (OSError, TypeError):  # no source: a built-in or a class made at run time
            continue
        for node, after in zip(body, body[1:], strict=False):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and is_string(after):
                docs[node.target.id] = after.value.value
    return docs


def is_string(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
