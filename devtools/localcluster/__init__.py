"""A real local Kubernetes (etcd + kube-apiserver + kube-controller-manager v1.20.2) with a fake
kubelet and a traffic simulator, for the demo and the tests: the dev tools, their own distribution
(`devtools/pyproject.toml`), never imported by the product."""

from pathlib import Path

# The dev tools are installed editable from the repository (scripts/setup): the examples they run are in
# it, and the shared specs and CRDs (../shared) beside it.
REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
