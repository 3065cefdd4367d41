"""Kubernetes backend tests.

KubeSpawner loads a kubeconfig when a spawner is built; unit tests never talk
to an API server, so ``kube_support`` points them at a closed local port.
The end-to-end test starts its own emulator and hands the hub its own file.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import kube_support  # noqa: E402,F401  (sets KUBECONFIG before any spawner exists)
