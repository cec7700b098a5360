"""The README's output table, clusterphot.paths and the rules say the same thing."""

from __future__ import annotations

import re

from clusterphot import paths

from .conftest import REPO

PATTERNS = {name: value for name, value in vars(paths).items()
            if name.isupper() and isinstance(value, str) and value.startswith(("results/", "resources/"))}


def readme_output_rows() -> list[tuple[list[str], str]]:
    """(paths in the first column, rule in the second) of the README's output table."""
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("| path | made by rule | content |"):].split("\n\n")[0]
    rows = []
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        rows.append((re.findall(r"`([^`]+)`", cells[0]), cells[1]))
    return rows


def rule_blocks() -> dict[str, str]:
    """Rule name -> its text, from the rule files."""
    blocks = {}
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        parts = re.split(r"^rule (\w+):\n", path.read_text(), flags=re.MULTILINE)
        blocks.update(zip(parts[1::2], parts[2::2]))
    return blocks


def test_every_output_pattern_is_in_the_readme_with_the_rule_that_makes_it():
    rows = readme_output_rows()
    blocks = rule_blocks()
    documented = {path: rule for row_paths, rule in rows for path in row_paths}
    for name, pattern in PATTERNS.items():
        if pattern == paths.FETCHED_FRAME:
            assert f"`{pattern}` (rule `fetch_frame`)" in (REPO / "README.md").read_text()
            continue
        assert pattern in documented, f"paths.{name} ({pattern}) is not in the README's output table"
        rule = documented[pattern].strip("`")
        assert rule in blocks, f"README: {pattern} is made by rule {rule}, which does not exist"
        assert f"paths.{name}" in blocks[rule], f"rule {rule} does not write paths.{name} ({pattern})"


def test_every_results_path_in_the_readme_table_is_one_of_the_patterns():
    for row_paths, _ in readme_output_rows():
        for path in row_paths:
            if path.startswith("results/") and path != "results/report.html":
                assert path in PATTERNS.values(), f"README documents {path}, which clusterphot.paths does not have"
