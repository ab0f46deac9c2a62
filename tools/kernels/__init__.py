"""Kernel tasks and the four-step local gate: compile, correctness, micro-benchmark, adversarial inputs."""
