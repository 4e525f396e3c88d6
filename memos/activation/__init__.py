"""The activation tier: KV-cache snapshot files and the tier that builds and serves them."""
