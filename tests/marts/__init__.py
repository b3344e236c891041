"""Independent checks of the published metric marts (docs/metrics.md): a plain-Python reference and hand cases."""
