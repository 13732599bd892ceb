"""``kubectl bosun``: ask Bosun, review a proposal, approve or deny it, and follow tasks from a terminal.

The plugin is an ordinary API client. Every action is the person's own Kubernetes request, made with their
kubeconfig (or ``--as``, as kubectl does), so RBAC decides what they may do and admission stamps who they
are; it holds no rights of its own and shares nothing with the operator but the resource definitions.

- ``render``: what is printed, as pure functions of the objects read (golden-tested, no I/O);
- ``objects``: the AgentTask and ApprovalGrant it creates (pure);
- ``cluster``: the connection (kubectl's flags, the operator's credential path), reads, writes, watches;
- ``commands``: ask, show, approve, deny, list, watch;
- ``main``: the command line (the ``kubectl-bosun`` entry point).
"""
