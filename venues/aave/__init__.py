"""Aave v3 (``aave_v3``): the Pool's integer arithmetic mirrored in pure Python
(``math``, ``bitmaps``, ``account``, ``liquidation``), the block-pinned reads (``reads``) and
the adapter (``adapter``). Mirrors ``@aave/core-v3`` 1.19.3 (Aave v3.0.2)."""
