"""Benchmarks of Conversa's send path and read-model rebuild (see README.md)."""
