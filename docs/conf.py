"""Sphinx configuration of the driver author's guide.

Build: uv run sphinx-build -W --keep-going -b html docs docs/_build/html
"""

project = "Jumpstarter driver author's guide"
author = "the jumpstarter authors"
copyright = "the jumpstarter authors"

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Links to headings of other pages: [text](driver.md#lifecycle).
myst_heading_anchors = 3
myst_enable_extensions = ["deflist"]

html_theme = "alabaster"
html_title = "Jumpstarter: writing drivers"
html_theme_options = {"description": "A driver author's guide", "fixed_sidebar": True}
pygments_style = "sphinx"
