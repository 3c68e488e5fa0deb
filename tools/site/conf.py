"""Sphinx configuration of the course site (tools/build_site.py copies it next to the pages)."""

project = "Interpretabilidad de CNN y aumento de datos"
author = "Curso XAI"
language = "es"
extensions = ["myst_nb", "sphinx-mathjax-offline"]  # MathJax served from the site: works offline
nb_execution_mode = "off"  # the pages show the outputs of `make run`; nothing runs again
nb_merge_streams = True
nb_render_markdown_format = "myst"  # tables shown with display(Markdown(...)) stay tables
nb_code_prompt_show = "Mostrar el código"
nb_code_prompt_hide = "Ocultar el código"
myst_enable_extensions = ["dollarmath", "amsmath"]
exclude_patterns = ["_build", "student", "executed"]  # downloads, not pages
html_theme = "sphinx_book_theme"
html_title = project
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": False,  # downloads are links on each page (notebook, student version)
    "show_navbar_depth": 1,
}
html_show_sourcelink = False
html_copy_source = False  # the notebooks are downloads already
suppress_warnings = ["mystnb.unknown_mime_type"]
