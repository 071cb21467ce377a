//! Calico v3 configuration: the `projectcalico.org/v3` resources a tortie node runs from.
//!
//! # Input
//! One or more files (or directories of `*.yaml`/`*.yml`/`*.json`), each holding one or more
//! YAML documents separated by `---`. A document is one resource (`Node`, `BGPConfiguration`,
//! `BGPPeer`, `BGPFilter`, `IPPool`), or a `kind: List` (or `kind: <Kind>List`, as
//! `calicoctl get -o yaml` prints) whose `items` are resources. Empty documents are skipped.
//! Resources are written as Calico documents them (docs.tigera.io, Reference > Resources):
//! `apiVersion: projectcalico.org/v3`, `kind`, `metadata` (`name` required, `labels` and
//! `annotations` kept, datastore fields such as `resourceVersion` or `uid` accepted and
//! ignored) and `spec` with every documented field.
//!
//! # Errors
//! Unknown fields are errors, and so is every bad value. Each error names the file, the
//! document (1-based; and the list item), the resource's kind and name when known, the field
//! path and, when the parser knows it, the line:
//!
//! ```text
//! peers.yaml, document 2 (BGPPeer "tor-a"): spec.asNumber: invalid value: "abc", expected a 32-bit AS number (line 9, column 13)
//! ```
//!
//! Loading collects every error it can find before giving up ([`ConfigErrors`]); an agent
//! must not start on a configuration with errors.
//!
//! # Warnings
//! Fields tortie accepts but does not act on yet are listed by [`Config::warnings`], one per
//! document and field; which fields those are is the table in [`status`].
//!
//! # Passwords
//! A `password.secretKeyRef {name, key}` (BGPPeer) or `nodeMeshPassword.secretKeyRef`
//! (BGPConfiguration) refers to a Kubernetes Secret in Calico. Tortie reads the password from
//! the file **`<secrets_dir>/<name>/<key>`** instead, the layout of a Secret mounted as a
//! volume, `secrets_dir` being the agent's parameter; see [`secrets`]. Loading only checks the
//! reference; [`secrets::read_password`] reads the file and reports a missing one clearly.
//!
//! # Peers
//! [`Config::bgp_peerings`] computes the sessions a node should have (mesh, global,
//! node-specific and selector peers, passive side, route reflection); [`peers`] documents
//! Calico's rules it follows.

// The agent wires this module in (issues 3 and 7); until then only its tests use it.
#![cfg_attr(not(test), allow(dead_code, unused_imports))]

mod error;
mod load;
pub mod peers;
pub mod policy;
pub mod secrets;
pub mod selector;
pub mod status;
mod types;
mod validate;
pub mod values;

#[cfg(test)]
mod tests;

pub use error::{ConfigError, ConfigErrors, Source, Warning};
pub use peers::{BgpPeering, PeeringKind};
pub use selector::Selector;
pub use status::{FieldStatus, field_status};
pub use types::*;

use std::collections::BTreeMap;
use std::path::Path;

/// A resource and where it came from.
#[derive(Clone, Debug)]
pub struct Located<T> {
    pub source: Source,
    pub resource: T,
}

/// Every resource of a configuration, by name, and the warnings found while loading it.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub nodes: BTreeMap<String, Located<Node>>,
    pub bgp_configurations: BTreeMap<String, Located<BgpConfiguration>>,
    pub bgp_peers: BTreeMap<String, Located<BgpPeer>>,
    pub bgp_filters: BTreeMap<String, Located<BgpFilter>>,
    pub ip_pools: BTreeMap<String, Located<IpPool>>,
    /// Fields accepted but not acted on, by document and field path.
    pub warnings: Vec<Warning>,
}

/// `Config::node` for a name the configuration does not define.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no Node named {name:?} in the configuration (it defines: {})", if known.is_empty() { "no nodes".to_string() } else { known.join(", ") })]
pub struct UnknownNode {
    pub name: String,
    pub known: Vec<String>,
}

impl Config {
    /// Loads and validates every path (files, or directories of YAML/JSON files).
    pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<Config, ConfigErrors> {
        load::load_paths(paths)
    }

    /// Loads in-memory texts, each given with the label errors should use for it.
    pub fn from_texts(texts: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        load::load_texts(texts)
    }

    /// The Node called `name`.
    pub fn node(&self, name: &str) -> Result<&Located<Node>, UnknownNode> {
        self.nodes.get(name).ok_or_else(|| UnknownNode {
            name: name.to_string(),
            known: self.nodes.keys().cloned().collect(),
        })
    }
}
