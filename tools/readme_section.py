"""Replace a generated section of the README, between `<!-- NAME:start -->` and `<!-- NAME:end -->`.

Every figure in the README comes from a script in tools/ that calls this."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
# Beside the machine a generated section was made on: the README is read on other machines.
REGENERATED_HERE = " (the machine that last regenerated this section)"


def replace_section(name: str, body: str, readme: Path = README) -> None:
    text = readme.read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"README has no section {start} ... {end}")
    text = pattern.sub(lambda _: f"{start}\n{body.rstrip()}\n{end}", text)
    readme.write_text(text)
