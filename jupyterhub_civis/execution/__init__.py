"""Run a notebook inside a single-user server for its owner (reports): ``api/civis/execute``.

The server side (``ExecutionApp``, see ``app.py``) is loaded lazily so importing
``parameters`` does not import jupyter_server.
"""


def _jupyter_server_extension_points():
    from jupyterhub_civis.execution.app import ExecutionApp

    return [{"module": "jupyterhub_civis.execution", "app": ExecutionApp}]
