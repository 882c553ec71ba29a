"""Sphinx configuration of trueconv's documentation site.

Build it (warnings are errors) from the repository root:

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Needs ``pip install -e ".[docs]"``. Nothing is fetched from the network: no intersphinx, and the
gallery's examples (``docs/examples``, run at build time) use data that ships with the packages.
"""

from __future__ import annotations

import trueconv

project = "trueconv"
author = "trueconv developers"
copyright = "trueconv developers, BSD-3-Clause"
release = trueconv.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "gallery/*.ipynb",
]

# -- API reference -------------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"  # the numpydoc "Parameters" sections carry the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- Markdown (README sections, docs/design.md) --------------------------------------------------
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

# -- Gallery -------------------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "gallery",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "min_reported_time": 1,
    "show_memory": False,
}

# -- HTML ----------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"trueconv {release}"
html_static_path = ["_static"]
html_css_files = ["tables.css"]
html_show_sourcelink = False
