"""Reproducible warehouse query cache (jupyter-server extension and kernel client).

Built in its own issue; the package exists so the bundle's layout is complete.
"""
