"""The ``memos`` command line (installed as ``memos.cli``)."""
