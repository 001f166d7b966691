"""One-shot ``crossmargin`` commands (``check``, ``prices``, ``snapshot``, ``health``); the
long-running ``run`` is ``daemon.service``."""
