"""A real local Kubernetes (etcd + kube-apiserver + kube-controller-manager v1.20.2) with a fake
kubelet and a traffic simulator, for the demo and the tests."""
