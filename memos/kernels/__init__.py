"""Triton kernels of memos; the parametric tier adds them."""
