"""Read a policy from YAML text or a file: parse, locate, validate, explain.

YAML is composed to a node tree first, so every problem can point at its line, and
duplicate keys (which plain YAML loading would silently resolve to the last one) are
refused before anything is built.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from lanes.policy_errors import Loc, PolicyError, PolicyProblem, problems_from_validation
from lanes.policy_model import Policy

_TOP_LEVEL = "a mapping with version, default_endpoint, lanes and endpoints (see policies/default.yaml)"


def load_policy(path: str | Path) -> Policy:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise PolicyError(source, [f"{source}: cannot read the file: {err.strerror or err}"]) from None
    except UnicodeDecodeError:
        raise PolicyError(source, [f"{source}: cannot read the file: not UTF-8 text"]) from None
    return parse_policy(text, source)


def parse_policy(text: str, source: str) -> Policy:
    root = _compose(text, source)
    if root is None:
        raise PolicyError(source, [PolicyProblem(source, None, "", "an empty file", _TOP_LEVEL)])
    duplicates = list(_duplicate_keys(root, (), source))
    if duplicates:
        raise PolicyError(source, duplicates)
    data = _construct(root, text, source)
    if not isinstance(data, dict):
        got = "a list" if isinstance(data, list) else f"{type(data).__name__} {data!r}"
        raise PolicyError(source, [PolicyProblem(source, root.start_mark.line + 1, "", got, _TOP_LEVEL)])
    try:
        return Policy.model_validate(data)
    except ValidationError as err:
        problems = problems_from_validation(err, source, lambda loc: _line_of(root, loc))
        raise PolicyError(source, problems) from None


def _compose(text: str, source: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        raise PolicyError(source, [_syntax_error(err, source)]) from None
    except yaml.YAMLError as err:
        raise PolicyError(source, [f"{source}: YAML syntax error: {err}"]) from None


def _construct(root: yaml.Node, text: str, source: str) -> object:
    loader = yaml.SafeLoader(text)
    try:
        return loader.construct_document(root)
    except yaml.MarkedYAMLError as err:
        raise PolicyError(source, [_syntax_error(err, source)]) from None
    finally:
        loader.dispose()


def _syntax_error(err: yaml.MarkedYAMLError, source: str) -> str:
    mark = err.problem_mark or err.context_mark
    where = source if mark is None else f"{source}:{mark.line + 1}:{mark.column + 1}"
    what = " ".join(part for part in (err.context, err.problem) if part)
    return f"{where}: YAML syntax error: {what}"


def _duplicate_keys(node: yaml.Node, loc: Loc, source: str) -> list[PolicyProblem]:
    problems: list[PolicyProblem] = []
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in first_line:
                    problems.append(
                        PolicyProblem(
                            source,
                            key.start_mark.line + 1,
                            ".".join(map(str, (*loc, key.value))),
                            f"a second {key.value!r}",
                            f"each key once (the first is on line {first_line[key.value]}; "
                            "YAML would keep only the last)",
                        )
                    )
                first_line.setdefault(key.value, key.start_mark.line + 1)
                problems += _duplicate_keys(value, (*loc, key.value), source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            problems += _duplicate_keys(item, (*loc, i), source)
    return problems


def _line_of(root: yaml.Node, loc: Loc) -> int | None:
    """1-based line of the deepest node on `loc` that exists in the file."""
    node, line = root, root.start_mark.line
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)]
            if not found:
                break
            key, node = found[0]
            line = key.start_mark.line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line
        else:
            break
    return line + 1
