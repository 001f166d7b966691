"""``crossmargin demo``: local chains and exchanges (``world``), an ETH crash (``scenario``),
seeded portfolios (``portfolios``), the daemon's config for them (``config``), the live view
(``view``) and the command that plays it all (``run``)."""
