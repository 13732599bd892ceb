"""``make bench`` (``python -m tests.bench``; ``--only PART`` runs some parts): speed and memory figures of
Bosun on the local control plane. Prints numbers only; nothing here asserts a target (targets live in
people's heads and in the README, not in timed tests). Every process starts as it would from the image:
its modules compiled to bytecode beforehand (``make venv``; the Dockerfile does the same), so start time is
not the time to compile the sources.

- ``tools``: the tool server in process (latency of reads and of mutation previews) and what one model
  turn carries (tool definition and system prompt characters);
- ``compare``: Bosun against the floor (``floor.py``, the cheapest kopf operator; a benchmark baseline,
  not part of Bosun), started alternately on the same control plane: latency from create to proposal and
  to answer with 1 in flight (spaced, and back to back) and 20, throughput, operator and kube-apiserver
  CPU per task, start to the first object handled, idle and loaded memory; plus the model path with a
  scripted zero-latency model;
- ``live``: 500 tasks created at once on one Bosun process (``live.py``): all reach their phase, none lost,
  how long they took, and RSS per live task (loaded - idle) / 500 against issue 12's 50 KB;
- ``shards``: sharding by namespace (``shards.py``, ``docs/scaling.md``): two Bosun processes with disjoint
  ``BOSUN_NAMESPACES`` against one process on the same namespaces and load, alternately; throughput, CPU,
  and who handled each task according to its Events and to each process's log (none twice);
- ``failover`` (only with ``BOSUN_BENCH_FAILOVER=1`` or ``--failover``, about 9 minutes): the leader of two
  replicas SIGKILLed 20 times during an approved non-idempotent call.
"""

import sys
from pathlib import Path

_CLUSTER = str(Path(__file__).resolve().parents[1] / "cluster")
if _CLUSTER not in sys.path:
    sys.path.insert(0, _CLUSTER)  # tests/cluster/localcluster.py, imported as `localcluster`
