"""Evaluations of memos on public benchmark formats (data is never shipped)."""
