"""An operator without a model never loads LangGraph or LiteLLM: they would cost every offline
installation about 1.5 s of start-up and 140 MiB (``make bench`` shows start time and idle RSS)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

MODEL_LIBRARIES = ("langgraph", "litellm", "langchain_core")


def test_the_operator_and_the_offline_planner_import_no_model_library() -> None:
    script = textwrap.dedent(
        f"""
        import sys
        import bosun.__main__
        from bosun.planner import offline  # the planner used without a model
        loaded = [name for name in {MODEL_LIBRARIES!r} if name in sys.modules]
        print(",".join(loaded))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"imported at start without a model: {proc.stdout.strip()}"
