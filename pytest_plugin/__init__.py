"""The mp-chaos pytest plugin: `pytest --mp-chaos[=SPEC]` (registered through the pytest11 entry point)."""
