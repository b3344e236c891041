"""Independent checks of the published metric marts (METRICS.md): a plain-Python reference and hand cases."""
