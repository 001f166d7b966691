"""The ``crossmargin`` command line as a subprocess, the way operators run it."""

from __future__ import annotations

import asyncio
import os
import sys

from devnet import REPO_ROOT

CLI_TIMEOUT_S = 60.0


async def crossmargin(*args: str) -> tuple[int, str, str]:
    """Run ``crossmargin ARGS``; return (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "daemon.cli",
        *args,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT_S)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
