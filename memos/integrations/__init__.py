"""Bridges from agent frameworks into memos (each imports its framework lazily)."""
