"""Pass infrastructure: named, registered passes with typed options, and text pipelines.

Pipeline text: comma-separated pass names, each with optional `{key=value,...}` options:
    "canonicalize,dce,tile{target=cpu,q_block=64}"
Options are dataclass fields of the pass; values are converted to the field's type.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass
from typing import Callable, ClassVar

from ..errors import IRError
from ..graph import Graph

PASS_REGISTRY: dict[str, type["Pass"]] = {}


class PipelineError(ValueError):
    """A pipeline spec that cannot be parsed; names the pass and option at fault."""


def register_pass(cls):
    """Class decorator: make a pass available to pipelines by its `name`."""
    PASS_REGISTRY[cls.name] = cls
    return cls


@dataclass(frozen=True)
class Pass:
    """Base class. Subclasses set `name`, declare options as dataclass fields, implement `run`."""

    name: ClassVar[str] = "pass"

    def run(self, graph: Graph) -> Graph:
        raise NotImplementedError

    def __call__(self, graph: Graph) -> Graph:
        return self.run(graph)

    def spec_text(self) -> str:
        """This pass (with non-default options) in pipeline syntax."""
        opts = [f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self)
                if getattr(self, f.name) != f.default]
        return self.name + ("{" + ",".join(opts) + "}" if opts else "")


def split_pipeline(text: str) -> list[str]:
    """Split pipeline text into its pass items at top-level commas (commas inside `{...}` stay)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if depth != 0:
        raise PipelineError(f"unbalanced braces in pipeline {text!r}")
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def _convert(pass_name: str, field: dataclasses.Field, raw: str, hints: dict):
    typ = hints.get(field.name, str)
    args = [a for a in typing.get_args(typ) if a is not type(None)] or [typ]
    if raw in ("none", "None") and type(None) in typing.get_args(typ):
        return None
    for t in args:
        try:
            if t is bool:
                if raw.lower() in ("true", "1", "yes"):
                    return True
                if raw.lower() in ("false", "0", "no"):
                    return False
                raise ValueError
            if t in (int, float, str):
                return t(raw)
        except ValueError:
            continue
    raise PipelineError(f"pass '{pass_name}': option '{field.name}' expects {typ}, got {raw!r}")


def parse_pipeline(text: str) -> list[Pass]:
    """Parse a pipeline spec into pass objects; errors name the pass and option."""
    passes = []
    for item in split_pipeline(text):
        name, opts = item, {}
        if "{" in item:
            if not item.endswith("}"):
                raise PipelineError(f"pass '{item}': options must end with '}}'")
            name, body = item[:-1].split("{", 1)
            name = name.strip()
            for kv in filter(None, (s.strip() for s in body.split(","))):
                if "=" not in kv:
                    raise PipelineError(f"pass '{name}': option '{kv}' must be key=value")
                k, v = (s.strip() for s in kv.split("=", 1))
                opts[k] = v
        if name not in PASS_REGISTRY:
            raise PipelineError(f"unknown pass '{name}'; registered passes: {', '.join(sorted(PASS_REGISTRY))}")
        cls = PASS_REGISTRY[name]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for k, v in opts.items():
            if k not in fields:
                raise PipelineError(f"pass '{name}' has no option '{k}'; options: {', '.join(fields) or '(none)'}")
            kwargs[k] = _convert(name, fields[k], v, hints)
        passes.append(cls(**kwargs))
    return passes


def run_pipeline(graph: Graph, pipeline: str | list[Pass], verify: bool = True, dump_dir: str | None = None,
                 on_pass: Callable[[Pass, Graph], None] | None = None) -> Graph:
    """Run passes in order on a copy of `graph`, verifying after each; optionally dump the IR after each pass."""
    from ..printer import print_ir

    passes = parse_pipeline(pipeline) if isinstance(pipeline, str) else list(pipeline)
    g = graph.copy()
    if dump_dir:
        os.makedirs(dump_dir, exist_ok=True)
        with open(os.path.join(dump_dir, "00-input.ir"), "w") as f:
            f.write(print_ir(g))
    for i, p in enumerate(passes, start=1):
        g = p.run(g)
        if verify:
            try:
                g.verify()
            except IRError as e:
                raise IRError(f"after pass '{p.name}': {e}") from e
        if dump_dir:
            with open(os.path.join(dump_dir, f"{i:02d}-{p.name}.ir"), "w") as f:
                f.write(print_ir(g))
        if on_pass:
            on_pass(p, g)
    return g
