"""``python -m bosun``: run the operator in the foreground (standalone, no peering).

Watches all namespaces, or those in ``BOSUN_NAMESPACES``; ``BOSUN_LOG_LEVEL`` is debug, info (default),
warning or error; the rest of the configuration is in ``bosun.config``. Connects with ``$KUBECONFIG`` or
the in-cluster service account.
"""

from __future__ import annotations

import asyncio
import logging
import os

import kopf

import bosun.handlers  # noqa: F401  (registers the handlers)
from bosun.config import OperatorConfig


def main() -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    config = OperatorConfig.from_env()
    level = os.environ.get("BOSUN_LOG_LEVEL", "info").lower()
    kopf.configure(verbose=level == "debug", quiet=level in ("warning", "error"))
    logging.getLogger("httpx").setLevel(logging.WARNING)
    namespaces = list(config.namespaces)
    asyncio.run(kopf.operator(standalone=True, clusterwide=not namespaces, namespaces=namespaces))


if __name__ == "__main__":
    main()
