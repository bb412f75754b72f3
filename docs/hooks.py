"""MkDocs hook: serve the committed bench figures beside the pages that include the reports.

``docs/benchmarks/<name>/report.md`` includes ``bench/results/<name>/<name>.md`` as the bench
wrote it; its figures are linked by bare file name, so each ``bench/results/<name>/*.png`` is
added to the site as ``benchmarks/<name>/<file>`` (nothing is copied into docs/).
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


def on_files(files, config):
    for figure in sorted(RESULTS.glob("**/*.png")):
        uri = "benchmarks/" + figure.relative_to(RESULTS).as_posix()
        if files.get_file_from_path(uri) is None:
            files.append(File.generated(config, uri, abs_src_path=str(figure)))
    return files
