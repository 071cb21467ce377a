//! deploy/ as a cluster would receive and run it. Every overlay is rendered with the real
//! `kubectl kustomize` and validated strictly against the Kubernetes schemas
//! (`kubernetes-validate`); the Calico resources its ConfigMaps carry load through the real
//! `tortie apply --dry-run`; cross-document references (ConfigMaps, Secrets, BGP password
//! files, the image's programs) are checked; and the workloads run as written, init containers
//! and agents, in network namespaces against a real etcd with client TLS ([`pod`] says how a
//! pod is run without a kubelet).
//!
//! Needs root (namespaces), kubectl, kubernetes-validate, etcd, openssl, busybox-static and
//! setpriv; tools/test.sh installs them.

#[path = "../support/mod.rs"]
mod support;

mod cluster;
mod e2e;
mod manifests;
mod pod;
mod resources;
mod runtime;
mod steps;
mod tls;
mod validation;
mod workloads;
