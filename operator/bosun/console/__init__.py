"""Bosun's web console: people ask, review proposals with their diffs, approve or deny, and follow tasks
live, each action their own Kubernetes request (``access``).

Stack, chosen for what the console must be: a Starlette application served by uvicorn, pages rendered on
the server with Jinja2 (autoescaped), and live updates pushed with Server-Sent Events (sse-starlette) from
the API server's own watches. All of these already come with the MCP tool stack, so the console adds no
dependency; the browser runs one small script of the console's own (``static/console.js``) that puts
server-rendered parts in place, so the Content-Security-Policy can forbid every inline script and every
other origin, nothing is fetched from a CDN, and there is no front-end build. SSE (not WebSockets) because
the flow is one-way, goes through any HTTP proxy, and the browser reconnects by itself.

``views`` and ``overview`` decide what is shown (pure, unit-tested); ``app`` wires routes, streams and
protections; ``templates`` lay it out.
"""
