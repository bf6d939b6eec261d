"""Every relative Markdown link in the docs resolves: the file exists, and an `#anchor` names a
heading of the file it points to, slugged as GitHub slugs it (lowercase, punctuation but `-` and `_`
dropped, each space a `-`, a repeated heading `-1`, `-2`, …). Links in code blocks and inline code
are not links; web addresses are not checked here."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "helm" / "README.md", ROOT / "eval" / "README.md"]
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def prose_lines(text):
    """The lines outside fenced code blocks, with inline code blanked out."""
    fence = None
    for line in text.splitlines():
        marker = re.match(r"\s*(```+|~~~+)", line)
        if marker:
            fence = None if fence and marker.group(1).startswith(fence) else (fence or marker.group(1))
            continue
        if fence is None:
            yield re.sub(r"(`+)(?:(?!\1).)+\1", "", line)


def slug(heading):
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    """The anchors GitHub gives the headings of a Markdown file, duplicates numbered."""
    found, seen, fence = set(), {}, None
    for line in path.read_text(encoding="utf-8").splitlines():
        marker = re.match(r"\s*(```+|~~~+)", line)
        if marker:
            fence = None if fence and marker.group(1).startswith(fence) else (fence or marker.group(1))
            continue
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line) if fence is None else None
        if heading:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        found.update(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", line))
    return found


def links(path):
    for number, line in enumerate(prose_lines(path.read_text(encoding="utf-8")), start=1):
        for target in LINK.findall(line):
            if not re.match(r"[a-z][a-z0-9+.-]*:", target, flags=re.IGNORECASE):  # http:, mailto:, …
                yield target


def broken(path):
    problems = []
    for target in links(path):
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            problems.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            problems.append(f"{target}: no heading with that anchor in {linked.name}")
    return problems


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(path):
    assert not broken(path)


def test_anchors_are_slugged_as_github_slugs_them(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# Multi-pod (cluster mode)\n## `POST /api/ingest/{format}`\n## Notes\n## Notes\n"
                   "```\n# not a heading\n```\n## Resource sizing: why_the defaults?\n")
    assert anchors(doc) == {"multi-pod-cluster-mode", "post-apiingestformat", "notes", "notes-1",
                            "resource-sizing-why_the-defaults"}


def test_it_reports_a_missing_file_and_a_missing_anchor_but_not_code(tmp_path):
    (tmp_path / "other.md").write_text("# Here\n")
    doc = tmp_path / "doc.md"
    doc.write_text("[a](other.md#here) [b](other.md#gone) [c](missing.md) [d](https://x.org/#y) `[e](nope.md)`\n"
                   "```\n[f](nope.md)\n```\n[g](#top)\n# Top\n")
    assert broken(doc) == ["other.md#gone: no heading with that anchor in other.md", "missing.md: no such file"]
