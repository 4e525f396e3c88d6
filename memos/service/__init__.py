"""The service doors: HTTP app, API keys and tenants, MCP server, remote client.

Nothing here is imported by ``import memos``; fastapi, uvicorn, httpx and mcp
load only when a door is opened (``memos serve``, ``memos mcp``,
``Memos.connect``).
"""
