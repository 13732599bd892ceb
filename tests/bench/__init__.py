"""``make bench`` (``python -m tests.bench``): speed and memory figures of Bosun on the local control plane.
Prints numbers only; nothing here asserts a target (targets live in people's heads and in the README, not
in timed tests).

- ``tools``: the tool server in process (latency of reads and of mutation previews) and what one model
  turn carries (tool definition and system prompt characters);
- ``compare``: Bosun against the floor (``floor.py``, the cheapest kopf operator; a benchmark baseline,
  not part of Bosun), started alternately on the same control plane: latency from create to proposal and
  to answer with 1 and 20 in flight, throughput, operator and kube-apiserver CPU per task, start to the
  first object handled, idle and loaded memory; plus the model path with a scripted zero-latency model;
- ``failover`` (only with ``BOSUN_BENCH_FAILOVER=1`` or ``--failover``, about 9 minutes): the leader of two
  replicas SIGKILLed 20 times during an approved non-idempotent call.
"""

import sys
from pathlib import Path

_CLUSTER = str(Path(__file__).resolve().parents[1] / "cluster")
if _CLUSTER not in sys.path:
    sys.path.insert(0, _CLUSTER)  # tests/cluster/localcluster.py, imported as `localcluster`
