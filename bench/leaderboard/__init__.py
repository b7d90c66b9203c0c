"""The leaderboard: a static, self-contained web site built from results folders.

:func:`bench.leaderboard.pages.build_site` (``nvsbench leaderboard build RESULTS_DIR... --out SITE_DIR``) reads what
:mod:`bench.runner` stores in each folder -- ``summary.json``, ``results.sqlite`` (per-sample
scores and per-sample geometry, :mod:`bench.store`) and ``visuals/<pipeline>/<run key>/*.png``
(:mod:`bench.visuals`; the run key of ``summary.json``) -- and writes

- ``index.html``: every suite with its data, protocol, number of samples and of pipelines, and
  whether the published rows matched to it are comparable with the run (:func:`bench.leaderboard.published.not_comparable`);
- ``suite-<suite>.html``: one table per metric family, sorted by the suite's primary metric and
  sortable in the browser; a cell is "mean ± half-width of the 95 % CI (n)", marked when the
  paired test against the best row gives p < 0.05, with what the mean is over when the summary
  says (``details["mean_over"]``, e.g. mIoU's classes); unavailable metrics show their reason;
  published rows matched to the suite are a separate, never ranked, part of each table, with
  their citation and notes, labelled "not comparable" with the reason unless the run's data is
  the published split; SVG plots of per-sample scores against the source-target angle, the target
  camera distance (the first radius bin shaded) and the trajectory length;
- ``pipeline-<suite>.<pipeline>.html``: run metadata, every metric, the sample image grids
  (copied into ``img/``) and the failures;
- ``published.html``: every row of the published-results file with its citation.

Pages are rendered with Jinja2 from ``leaderboard/*.j2`` with autoescaping on, so any text from
configs, results or the published file shows as text. The CSS and JavaScript
(``leaderboard/site.css``, ``site.js``) are inlined, and each page's Content-Security-Policy
allows nothing but them (by hash) and the site's own images: the site works from ``file://`` and
fetches nothing when viewed. It is built in a temporary folder next to ``out`` and then moved in
place; an existing ``out`` is replaced only when it is a site built here.

Modules, in the order the data flows: :mod:`~bench.leaderboard.results` (reading a results
folder), :mod:`~bench.leaderboard.published` (published rows and comparability),
:mod:`~bench.leaderboard.tables`, :mod:`~bench.leaderboard.plots`, :mod:`~bench.leaderboard.pages`.
"""
