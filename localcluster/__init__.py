"""The local cluster: real etcd, kube-apiserver, containerd nodes and registries on loopback.

Used by the tests, the demo and the benchmarks; not product code.
"""
