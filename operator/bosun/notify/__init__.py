"""Notifications: a proposal awaiting approval (and, when configured, a task's end) reaches people.

The operator's administrator configures sinks (``bosun.notify.settings``): a generic JSON webhook signed
with HMAC-SHA256, a Slack incoming webhook (Block Kit) and a Microsoft Teams webhook (an Adaptive Card, as
Teams Workflows and incoming webhooks take it). Their URLs and signing keys are files of a Secret mounted
into the operator's pod; nothing a task says can name a URL.

How it is wired:

- ``Task.write`` (``bosun.steps.task``) tells its ``Deps.phase_observers`` about every status write that
  changed the phase or wrote a new proposal, with the object the API server returned. ``Notifier.observe``
  is such an observer: it translates that stored status into one message per interested sink (pure
  translators: ``notice``, ``formats``, ``signature``) and puts them on a bounded queue, never waiting.
- Background workers (``sender``), started in kopf's startup handler and stopped in its cleanup, post
  each message with a per-attempt timeout and retries with exponential backoff and jitter. A sink that
  fails, hangs or refuses is logged and given up on; the task never waits for it and never learns of it.

**Delivery guarantee: at most once per phase change, retried while the process lives.** The observer runs
only after a *conditional* status write succeeded, so exactly one writer can ever observe a given change
(a stale writer, a second replica or a delayed reconcile gets 409 and observes nothing), and reading a
task — a restart re-listing it, the sweep, a watch event — observes nothing, so nobody is notified twice
about one proposal. The price is that a crash between the status write and the end of delivery loses that
notification. That was chosen over an outbox in ``.status`` (at least once) because:

- the task itself is the durable record: ``kubectl get agenttasks`` lists every proposal awaiting approval
  whether or not a message arrived, and ``Expired`` can be notified too;
- an outbox costs a second status write per notification on every task, from a sender racing the
  reconcile for the resourceVersion, for a message that is a convenience;
- chat sinks cannot drop duplicates, and re-sending what a restart cannot prove was sent would post every
  waiting proposal again on every restart or failover, which teaches people to ignore the channel.

Within one process a message is retried, so a receiver whose answer was lost (a timeout after it acted)
may get it twice: every message carries a delivery id (``X-Bosun-Delivery``, the same on every attempt and
derived from task uid, event and proposal hash) for a receiver to drop repeats.
"""
