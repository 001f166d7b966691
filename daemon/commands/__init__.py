"""One-shot ``crossmargin`` commands, one file each (``check`` with its ``probes``, ``prices``,
``snapshot``, ``health``, ``migrate``); the long-running ``run`` is ``daemon.service``."""
