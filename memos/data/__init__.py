"""Data shipped with memos: a small general-text corpus written for the project."""
