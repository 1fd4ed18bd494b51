"""Sphinx configuration of the book: the executed series as a static site (`make book` -> build/book/).

`make book` executes every notebook (book/execute.py) into build/book-src/, copies this folder beside them and runs
sphinx-build there; Sphinx itself never runs a cell (nb_execution_mode = "off").
"""
project = "sdlab: take Stable Diffusion apart"
author = "the sdlab authors"
copyright = "the sdlab authors, MIT licence"

extensions = ["myst_nb"]
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "README.md"]

# The notebooks arrive executed: Sphinx shows their outputs and runs nothing.
nb_execution_mode = "off"
# Notebook markdown writes math as $...$ and $$...$$ (rendered by MathJax, from its CDN).
myst_enable_extensions = ["dollarmath", "amsmath"]
# Outputs keep their richest form; text/html (the explorers: self-contained HTML with an inline script) is
# included raw, so an explorer works in the page with no kernel.
nb_output_stderr = "show"

html_theme = "sphinx_book_theme"
html_title = "sdlab"
html_static_path = ["_static"]
html_css_files = ["sdlab.css"]
html_copy_source = False  # the executed notebooks are large; the site links to the repository instead
html_show_sourcelink = False
html_theme_options = {
    "repository_url": "https://github.com/sdlab-course/sdlab",
    "path_to_docs": "notebooks",
    "use_repository_button": True,
    "use_download_button": False,
    "home_page_in_toc": True,
    "show_toc_level": 2,
    # no right-hand "contents" column: the explorers' panes (three of 256 px in 03) get the page's width
    "secondary_sidebar_items": [],
}
