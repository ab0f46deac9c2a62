"""A simulated serving stack: seeded, with layered knobs, moving bottlenecks, crashes, corruption and traps."""
