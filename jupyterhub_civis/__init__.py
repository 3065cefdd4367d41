"""jupyterhub-civis: per-notebook environments, a reproducible query cache and sharing
for an existing JupyterHub.

Kept import-light: the hub imports this package, single-user servers import it
for the notebook-environment extension.
"""

from jupyterhub_civis._version import __version__

__all__ = ["__version__"]
