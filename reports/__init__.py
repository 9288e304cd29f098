"""reports: render results files into HTML, Markdown, LaTeX and JSON reports."""
