"""BENCHMARK BASELINE, NOT PART OF BOSUN: the "floor" operator that ``make bench`` measures Bosun against.

The cheapest operator that can be built on the same pinned kopf as Bosun: one ``on.create`` handler for
``FloorTask`` objects (``floortasks.bench.bosun.dev``, CRD in ``floor-crd.yaml`` beside this file) that
only sets ``status.phase = Done`` through kopf's own patch, so whatever a figure of Bosun costs beyond
this one is Bosun's own (planning, tools, status writes, Events, timers). kopf's settings are its defaults
except the two that make it cheaper still and that Bosun needs no equivalent of here: no peering
(standalone) and no Kubernetes Events posted for handler outcomes.

Run by the bench as ``python tests/bench/floor.py`` (a plain script, so nothing but kopf is imported) with
``FLOOR_NAMESPACE`` naming the one namespace to watch and ``$KUBECONFIG`` the credentials.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf


@kopf.on.create("bench.bosun.dev", "v1", "floortasks")
async def done(patch: kopf.Patch, **_: Any) -> None:
    patch.status["phase"] = "Done"


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False
    kopf.run(standalone=True, namespaces=[os.environ["FLOOR_NAMESPACE"]], settings=settings)


if __name__ == "__main__":
    main()
