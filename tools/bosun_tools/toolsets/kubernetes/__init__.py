"""Kubernetes toolset: the read-only tools (``read``) and the mutating ones (``write``); the registry
imports every module of this package (``bosun_tools.registry.load_toolsets``)."""
