"""Taxonomy files: the official runner's nested JSON {"category": {"attribute": [values]}}, read with a
size and depth limit (a workflow may point at any file, so no message quotes its content), and the value
lists under a dotted path such as "demographics.gender" (its get_category_data)."""
from __future__ import annotations

import json
from pathlib import Path

from .study import parse_values

MAX_TAXONOMY_BYTES = 1_000_000  # a taxonomy is a few lists of words; a larger file is not read at all
MAX_TAXONOMY_DEPTH = 32


def load_taxonomy(path: str | Path, max_bytes: int = MAX_TAXONOMY_BYTES) -> dict:
    """A taxonomy JSON file of at most max_bytes; ValueError naming the file when it is missing, too large or
    not JSON. No message quotes the file's content (a workflow may point at any file)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"taxonomy file {str(path)!r} does not exist (or is not a file)")
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"taxonomy file {str(path)!r}: {size} bytes, more than {max_bytes}; a taxonomy is a "
                         "small JSON of lists of values")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"taxonomy file {str(path)!r} is not UTF-8 text (a byte at position {e.start})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"taxonomy file {str(path)!r} is not JSON (line {e.lineno}, column {e.colno}); expected "
                         'nested objects with lists of values, e.g. {"demographics": {"gender": ["man", "woman"]}}') from None
    except RecursionError:
        raise ValueError(f"taxonomy file {str(path)!r} is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError(f"taxonomy file {str(path)!r}: the top level must be an object of categories, "
                         f"got {type(data).__name__}")
    return data


def taxonomy_lists(taxonomy: dict, path: str = "") -> dict[str, list[str]]:
    """The value lists under a dotted path ("demographics.gender"; "" = everything), keyed by their
    full dotted path, in file order. A missing key is a ValueError naming it (not the file's keys)."""
    node, walked = taxonomy, []
    for key in [k for k in path.split(".") if k] if path else []:
        if not isinstance(node, dict):
            raise ValueError(f"taxonomy path {path!r}: {'.'.join(walked)!r} is a list of values, it has no key {key!r}")
        if key not in node:
            where = ".".join(walked) or "the top level"
            raise ValueError(f"taxonomy path {path!r}: no key {key!r} in {where} (it has {len(node)} keys)")
        node = node[key]
        walked.append(key)
    found: dict[str, list[str]] = {}
    todo = [(node, walked)]
    while todo:  # depth first, in file order, without recursion
        n, at = todo.pop()
        where = ".".join(at) or "the top level"
        if len(at) > MAX_TAXONOMY_DEPTH:
            raise ValueError(f"taxonomy path {where[:80]!r}...: nested more than {MAX_TAXONOMY_DEPTH} levels deep")
        if isinstance(n, dict):
            todo += [(v, at + [str(k)]) for k, v in reversed(list(n.items()))]
        elif isinstance(n, list):
            found[".".join(at)] = parse_values(n, f"taxonomy path {where!r}")
        else:
            raise ValueError(f"taxonomy path {where!r}: expected an object or a list of values, got "
                             f"{type(n).__name__}")
    if not found:
        raise ValueError(f"taxonomy path {path!r}: holds no list of values")
    return found


def one_taxonomy_list(taxonomy: dict, path: str, name: str = "taxonomy_path") -> list[str]:
    """The values of the one list under a dotted path; ValueError naming the input when it holds several."""
    lists = taxonomy_lists(taxonomy, path)
    if len(lists) != 1:
        raise ValueError(f"{name} {path!r} holds {len(lists)} lists ({', '.join(lists)}); give the dotted path "
                         "of one of them")
    return next(iter(lists.values()))
