"""Clip filters: optional stages between split and caption (or after score) that measure every clip, record the
numbers in its `filters` list, and keep it or drop it with a reason (`tag` mode only records)."""
