"""Write resources/codes.precompiled.json: the built-in catalogue, checked, beside its source text.

Run after every change to resources/codes.toml (tests/test_startup_units.py fails until then):
    .venv/bin/python packaging/precompile_codes.py

The app reads the stored catalogue only while codes.toml's text is exactly the text stored with
it, and otherwise parses codes.toml (therapy_timer.codes.load_builtin): a stale file is never used.
"""

from __future__ import annotations

from pathlib import Path

from therapy_timer.codes import (
    BUILTIN_CODES_FILE,
    PRECOMPILED_CODES_FILE,
    Catalogue,
    precompiled_form,
)

RESOURCES = Path(__file__).resolve().parent.parent / "resources"


def main() -> None:
    toml = RESOURCES / BUILTIN_CODES_FILE
    catalogue = Catalogue.from_toml(toml)  # parsed and checked as strictly as a clinic's file
    out = RESOURCES / PRECOMPILED_CODES_FILE
    out.write_text(precompiled_form(catalogue, toml.read_bytes()) + "\n", encoding="utf-8")
    print(f"{out}: {len(catalogue)} codes")


if __name__ == "__main__":
    main()
