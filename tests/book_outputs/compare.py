"""nbval's output comparison (nbval 0.11, `pytest --nbval`) as a function of two notebooks: the committed
chapter and an execution of it. Images and widget views are not compared, outputs are sanitized by
book/nbval_sanitize.cfg, streams are merged, and cells marked `# NBVAL_IGNORE_OUTPUT` (or tagged so), skipped
or never run in the committed chapter are not compared, all as nbval does."""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from nbval.plugin import (coalesce_streams, find_comment_markers, find_metadata_tags, get_sanitize_patterns,
                          transform_streams_for_comparison)

SKIP_COMPARE = ("metadata", "traceback", "prompt_number", "output_type", "name", "execution_count",
                "application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg")  # nbval's, without nbdime


def sanitizer(config: Path):
    patterns = dict(get_sanitize_patterns(config.read_text()))  # in file order, as nbval applies them

    def sanitize(value):
        if not isinstance(value, str):
            return value
        for regex, replace in patterns.items():
            value = re.sub(regex, replace, value)
        return value

    return sanitize


def flatten(outputs, sanitize) -> dict[str, list]:
    """nbval's comparison form: per output key (MIME types flattened out of `data`), the list of values."""
    flat = defaultdict(list)
    for output in transform_streams_for_comparison(coalesce_streams(outputs)):
        for key, value in output.items():
            if key in SKIP_COMPARE:
                continue
            if key == "data":
                for mime, data in value.items():
                    if mime not in SKIP_COMPARE:
                        flat[mime].append(sanitize(data))
            else:
                flat[key].append(sanitize(value))
    return dict(flat)


def checked(cell) -> bool:
    options = dict(find_metadata_tags(cell.metadata))
    options.update(dict(find_comment_markers(cell.source)))
    return options.get("check", True) and not options.get("skip", False) and cell.execution_count is not None


def differences(committed, executed, sanitize) -> list[str]:
    """What nbval would report, one line per differing cell (empty: the execution reproduces the chapter)."""
    ours = [c for c in committed.cells if c.cell_type == "code"]
    theirs = [c for c in executed.cells if c.cell_type == "code"]
    if [c.source for c in ours] != [c.source for c in theirs]:
        return ["the executed copy has other code than the committed chapter"]
    found = []
    for number, (ref, new) in enumerate(zip(ours, theirs)):
        if not checked(ref):
            continue
        want, got = flatten(ref.outputs, sanitize), flatten(new.outputs, sanitize)
        if set(got) != set(want):
            found.append(f"cell {number}: output kinds {sorted(got)}, committed {sorted(want)}")
            continue
        for key in want:
            if got[key] != want[key]:
                found.append(f"cell {number} ({key}): {_first_difference(str(want[key]), str(got[key]))}")
    return found


def _first_difference(want: str, got: str, context: int = 160) -> str:
    """Where two outputs part: the committed and the executed text around the first differing character."""
    at = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
    start = max(0, at - context)
    return (f"from character {at}: committed ...{want[start:at + context]!r}..., "
            f"executed ...{got[start:at + context]!r}...")
