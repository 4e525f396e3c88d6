"""Triton kernels of memos (installed as ``memos.kernels``); the parametric tier adds them."""
