"""Bosun's MCP tool server: typed Kubernetes, Helm, Argo Rollouts and Jenkins tools with one safety
registry (``bosun_tools.registry``), impersonation (``bosun_tools.client.kube``) and previews of every
mutation."""
