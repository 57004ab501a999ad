#!/usr/bin/env python3
"""`make help`: the Makefile's targets and variables, one line each, read from its `##` lines.

A `##` line documents what follows it: a rule (`target: ...`) or a variable (`NAME ?= default`).
For a variable it reads `## TARGETS: meaning`, the targets that use the variable first. README's
tables "Make targets" and "Variables" hold the same rows; `--markdown` prints them as README
shows them, and the documentation suite (tests/docs) checks that the two agree."""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

MAKEFILE = Path(__file__).resolve().parent.parent / "Makefile"
RULE = re.compile(r"^([a-z][a-z0-9-]*):(?!=)")
VARIABLE = re.compile(r"^([A-Z][A-Z0-9_]*)\s*\?=\s*(.*?)\s*$")
USED_BY = re.compile(r"^((?:[a-z][a-z0-9-]*\s+)*[a-z][a-z0-9-]*): (.*)$")


@dataclass
class Target:
    name: str
    meaning: str


@dataclass
class Variable:
    name: str
    default: str
    used_by: str
    meaning: str


def read(makefile: Path = MAKEFILE) -> tuple[list[Target], list[Variable]]:
    """The documented targets and variables, in Makefile order. A `##` line followed by
    anything else is an error, so that a comment cannot document nothing."""
    targets: list[Target] = []
    variables: list[Variable] = []
    lines = makefile.read_text().splitlines()
    for number, line in enumerate(lines):
        if not line.startswith("## "):
            continue
        text = line[3:].strip()
        following = lines[number + 1] if number + 1 < len(lines) else ""
        if rule := RULE.match(following):
            targets.append(Target(rule[1], text))
        elif variable := VARIABLE.match(following):
            used_by = USED_BY.match(text)
            if not used_by:
                raise SystemExit(f"Makefile:{number + 1}: a variable's ## line reads `## TARGETS: meaning`")
            default = variable[2] if "$(" not in variable[2] else "(found)"
            variables.append(Variable(variable[1], default or "empty", used_by[1], used_by[2]))
        else:
            raise SystemExit(f"Makefile:{number + 1}: a ## line documents a rule or a `NAME ?= value` below it")
    # In the order of the .PHONY lines, which group them by use.
    order: list[str] = []
    for phony in re.findall(r"^\.PHONY:((?:.*\\\n)*.*)$", makefile.read_text(), re.MULTILINE):
        order += [name for name in phony.replace("\\\n", " ").split() if name not in order]
    targets.sort(key=lambda target: order.index(target.name) if target.name in order else len(order))
    return targets, variables


def plain(text: str) -> str:
    return text.replace("`", "")


def text_help(targets: list[Target], variables: list[Variable]) -> str:
    width = max(len(target.name) for target in targets)
    lines = ["Targets (make TARGET):"]
    lines += [f"  {target.name:<{width}}  {plain(target.meaning)}" for target in targets]
    name_width = max(len(variable.name) for variable in variables)
    default_width = max(len(variable.default) for variable in variables)
    used_width = max(len(variable.used_by) for variable in variables)
    lines += ["", "Variables (make TARGET NAME=value): name, default, the targets that use it, meaning"]
    lines += [f"  {v.name:<{name_width}}  {v.default:<{default_width}}  {v.used_by:<{used_width}}  {plain(v.meaning)}"
              for v in variables]
    return "\n".join(lines)


def markdown(targets: list[Target], variables: list[Variable]) -> str:
    lines = ["| target | what it does |", "|---|---|"]
    lines += [f"| `{target.name}` | {target.meaning} |" for target in targets]
    lines += ["", "| variable | default | used by | meaning |", "|---|---|---|---|"]
    for v in variables:
        default = "empty" if v.default == "empty" else v.default if v.default == "(found)" else f"`{v.default}`"
        lines.append(f"| `{v.name}` | {default} | {v.used_by} | {v.meaning} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--markdown", action="store_true", help="the tables as README shows them")
    options = parser.parse_args()
    targets, variables = read()
    print(markdown(targets, variables) if options.markdown else text_help(targets, variables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
