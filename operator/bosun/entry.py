"""The ``bosun`` command: the operator (no arguments, as the image runs it), or ``bosun console``.

Each is imported only when chosen, so the console starts without loading kopf, LangGraph or the tools.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["console"]:
        from bosun.console.main import main as console

        console(sys.argv[2:])
        return
    from bosun.__main__ import main as operator

    operator()
