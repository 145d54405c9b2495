"""MkDocs hook: the notebooks in notebooks/ become pages under notebooks/ (mkdocs-jupyter renders
and executes them), without keeping a second copy of them inside docs/."""

from __future__ import annotations

from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@event_priority(100)  # before mkdocs-jupyter's on_files, which picks up the .ipynb pages to render
def on_files(files, config):
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        files.append(
            File(
                f"notebooks/{path.name}",
                src_dir=str(NOTEBOOKS.parent),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files
