"""The parametric tier: side-GLU memories, their training, and the tier that stores
and attaches adapters."""
