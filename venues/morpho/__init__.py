"""Morpho Blue (``morpho_blue``): ``MathLib``, ``SharesMathLib`` and ``UtilsLib`` and the
market logic (interest accrual, ``_isHealthy``, ``liquidate``) mirrored in pure Python
(``math``, ``market``), the block-pinned reads (``reads``) and the adapter (``adapter``).
Mirrors ``@morpho-org/morpho-blue`` 1.0.0."""
