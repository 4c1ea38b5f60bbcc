"""The long fault cases (`make chaos`), outside the test suite; see docs/reliability.md."""
