"""docs/layout.md names every Python module and package of the project's apps, so the map cannot
drift: a new module (or a package: a folder with `__init__.py`) of threats/, agents/, stories/,
handoff/, suppressions/ or socproject/ fails here until its row is written. Migrations are one row
per app (`<app>/migrations/`), not one per file."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APPS = ["threats", "agents", "stories", "handoff", "suppressions", "socproject"]
LAYOUT = ROOT / "docs" / "layout.md"


def modules_and_packages(app):
    found = set()
    for path in (ROOT / app).rglob("*.py"):
        relative = path.relative_to(ROOT)
        if "migrations" in relative.parts[:-1]:
            if path.name == "__init__.py" and relative.parent.name == "migrations":
                found.add(f"{relative.parent.as_posix()}/")
        elif path.name == "__init__.py":
            found.add(f"{relative.parent.as_posix()}/")
        else:
            found.add(relative.as_posix())
    return found


def test_every_module_and_package_of_the_apps_has_a_row_in_the_layout_doc():
    layout = LAYOUT.read_text(encoding="utf-8")
    listed = {name for app in APPS for name in modules_and_packages(app) if f"| `{name}` |" in layout}

    missing = sorted({name for app in APPS for name in modules_and_packages(app)} - listed)
    assert not missing, f"add a row to docs/layout.md for each of: {missing}"


def test_the_layout_doc_lists_no_module_that_is_gone():
    import re

    layout = LAYOUT.read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `((?:" + "|".join(APPS) + r")/[^`]*)` \|", layout, flags=re.MULTILINE))
    present = {name for app in APPS for name in modules_and_packages(app)}

    assert sorted(rows - present) == []


def test_the_walk_finds_modules_packages_and_one_migrations_row():
    threats = modules_and_packages("threats")

    assert {"threats/", "threats/services.py", "threats/importers/", "threats/importers/wazuh.py",
            "threats/management/commands/seed_demo.py", "threats/migrations/"} <= threats
    assert not [name for name in threats if name.startswith("threats/migrations/0")]
