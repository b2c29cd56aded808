"""System tests: real processes started, killed and starved of disk; a TensorBoard server, a browser,
a Jupyter kernel; the whole demo end to end. Slower than the rest, and they need the machine."""
