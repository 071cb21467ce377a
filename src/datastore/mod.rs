//! The cluster's Calico resources in the datastore, and the calicoctl-like commands that
//! manage them: `tortie apply`, `tortie get`, `tortie delete`.
//!
//! Each resource is one key, `/tortie/v1/resources/<kind>/<name>` (`<kind>` the lower-case
//! plural: `nodes`, `bgpconfigurations`, `bgppeers`, `bgpfilters`, `ippools`), holding the
//! resource's JSON as it was applied (see [`documents`]). The datastore is the embedded store
//! in a data directory, or etcd when endpoints are given ([`StoreArgs`]).
//!
//! Nothing invalid is ever written: an apply validates the new documents together with every
//! stored one (so a BGPPeer may name a BGPFilter applied earlier), a delete checks that what
//! remains still validates, and both write with compare-and-swap transactions that fail when
//! any resource changed since the validation ([`writes`]), so an agent can always load what
//! is stored ([`load_config`]).

mod commands;
mod documents;
mod kinds;
mod snapshot;
mod table;
#[cfg(test)]
mod tests;
mod writes;

pub use commands::{ApplyArgs, DeleteArgs, GetArgs, run_apply, run_delete, run_get};
// The interface the agent and the lab call; the commands use only part of it.
#[allow(unused_imports)]
pub use commands::OutputFormat;
#[allow(unused_imports)]
pub use kinds::{kind_prefix, known_kinds, parse_kind, resource_key};
#[allow(unused_imports)]
pub use snapshot::{LoadedConfig, StoredResource, get_resources, load_snapshot};
#[allow(unused_imports)]
pub use writes::{Applied, ApplyReport, Deleted, MAX_ATTEMPTS, Outcome};

use std::path::PathBuf;
use std::sync::Arc;

use tortie_ipam::store::embedded::{EmbeddedConfig, EmbeddedStore};
use tortie_ipam::store::etcd::{EtcdConfig, EtcdStore, EtcdTls};
use tortie_ipam::store::{Store, StoreError};

use crate::config::{ConfigErrors, Kind};

/// Where every resource key lives.
pub const RESOURCES_PREFIX: &str = "/tortie/v1/resources/";

/// Rewritten by every resource write, so that a write fails when any resource changed since
/// it validated (see [`writes`]). Outside [`RESOURCES_PREFIX`], so watchers of the resources
/// never see it.
pub const GUARD_KEY: &str = "/tortie/v1/resources-guard";

/// Which datastore to use: the embedded store (default) or etcd.
#[derive(clap::Args, Clone, Debug)]
pub struct StoreArgs {
    /// The embedded store's data directory (the default datastore).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/tortie/data")]
    pub data_dir: PathBuf,
    /// etcd endpoints (comma-separated URLs); when set, etcd is the datastore.
    #[arg(long, value_name = "URLS", value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,
    /// CA certificate (PEM) that signed etcd's server certificate.
    #[arg(long, value_name = "FILE")]
    pub etcd_ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's --client-cert-auth; needs --etcd-key.
    #[arg(long, value_name = "FILE", requires = "etcd_key")]
    pub etcd_cert: Option<PathBuf>,
    /// Client key (PEM) of --etcd-cert.
    #[arg(long, value_name = "FILE", requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,
}

impl StoreArgs {
    /// Checks the options before anything is opened: TLS files exist and go with endpoints.
    fn check(&self) -> Result<(), DatastoreError> {
        if self.etcd_endpoints.iter().any(|e| e.trim().is_empty()) {
            return Err(DatastoreError::Usage(format!(
                "--etcd-endpoints {:?}: an empty endpoint in the list",
                self.etcd_endpoints.join(",")
            )));
        }
        let tls = [
            ("--etcd-ca-cert", &self.etcd_ca_cert),
            ("--etcd-cert", &self.etcd_cert),
            ("--etcd-key", &self.etcd_key),
        ];
        for (flag, file) in tls {
            let Some(file) = file else { continue };
            if self.etcd_endpoints.is_empty() {
                return Err(DatastoreError::Usage(format!(
                    "{flag} is for etcd, but no --etcd-endpoints were given"
                )));
            }
            if !file.is_file() {
                return Err(DatastoreError::Usage(format!(
                    "{flag} {}: no such file",
                    file.display()
                )));
            }
        }
        if self.etcd_cert.is_some() != self.etcd_key.is_some() {
            return Err(DatastoreError::Usage(
                "--etcd-cert and --etcd-key go together".into(),
            ));
        }
        Ok(())
    }

    /// Opens the datastore: etcd when endpoints are given (connecting and checking that it
    /// answers), else the embedded store in `data_dir` (created if missing).
    pub async fn open(&self) -> Result<Arc<dyn Store>, DatastoreError> {
        self.check()?;
        if self.etcd_endpoints.is_empty() {
            let store = EmbeddedStore::open(EmbeddedConfig::new(&self.data_dir)).await?;
            return Ok(Arc::new(store));
        }
        let mut config = EtcdConfig::new(self.etcd_endpoints.iter().map(|e| e.trim()));
        if self.etcd_ca_cert.is_some() || self.etcd_cert.is_some() {
            config = config.with_tls(EtcdTls {
                ca_file: self.etcd_ca_cert.clone(),
                cert_file: self.etcd_cert.clone(),
                key_file: self.etcd_key.clone(),
                domain: None,
            });
        }
        Ok(Arc::new(EtcdStore::connect(config).await?))
    }

    /// `embedded store /var/lib/tortie/data` or `etcd https://...`, for messages.
    pub fn describe(&self) -> String {
        if self.etcd_endpoints.is_empty() {
            format!("embedded store {}", self.data_dir.display())
        } else {
            format!("etcd {}", self.etcd_endpoints.join(","))
        }
    }
}

/// Why a datastore command or call failed.
#[derive(Debug, thiserror::Error)]
pub enum DatastoreError {
    /// The documents (or the stored ones they were validated with) are invalid; each error
    /// names the file or key, the document and the field.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request itself is wrong (unknown kind, bad name, bad option).
    #[error("{0}")]
    Usage(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{} {name:?} not found", kinds::singular(*kind))]
    NotFound { kind: Kind, name: String },
    /// A stored value is not a resource document tortie writes.
    #[error("corrupt resource at {key}: {what}")]
    Corrupt { key: String, what: String },
    /// The delete is refused: the remaining resources would not validate.
    #[error("deleting {what} would leave the stored configuration invalid:\n{errors}")]
    WouldBreak { what: String, errors: ConfigErrors },
    #[error("gave up after {attempts} attempts: other writers kept changing the resources")]
    Contention { attempts: u32 },
}

/// Loads every stored resource into a validated Config (each document labelled with its key,
/// so errors name the key and the field path); [`load_snapshot`] also gives the revision.
#[allow(dead_code)] // the agent's entry point; the commands do not need it
pub async fn load_config(store: &dyn Store) -> Result<crate::config::Config, DatastoreError> {
    Ok(load_snapshot(store).await?.config)
}

/// Validates `texts` (YAML files' contents, with labels) together with what is stored (so a
/// BGPPeer may refer to a stored BGPFilter), then writes each resource as JSON at its key in
/// one transaction per resource conditioned on the revisions read (retried on conflict).
/// Returns (kind, name, Created|Updated|Unchanged) per resource, in input order; nothing is
/// written when any document is invalid. [`apply`] also returns the warnings.
#[allow(dead_code)] // for the agent and the lab; `tortie apply` uses `apply`
pub async fn apply_texts(
    store: &dyn Store,
    texts: &[(&str, &str)],
) -> Result<Vec<Applied>, DatastoreError> {
    let report = apply(store, texts).await?;
    for w in &report.warnings {
        tracing::warn!("{w}");
    }
    Ok(report.applied)
}

/// [`apply_texts`], with the warnings about the applied documents.
pub async fn apply(
    store: &dyn Store,
    texts: &[(&str, &str)],
) -> Result<ApplyReport, DatastoreError> {
    writes::apply(store, texts).await
}

/// Deletes one resource (`kind` as the command line spells it); false when it did not exist.
/// Refused when the remaining resources would not validate.
#[allow(dead_code)] // for the agent and the lab; `tortie delete` uses `delete_resources`
pub async fn delete_resource(
    store: &dyn Store,
    kind: &str,
    name: &str,
) -> Result<bool, DatastoreError> {
    let kind = parse_kind(kind)?;
    check_name(name)?;
    let deleted = delete_resources(store, &[(kind, name.to_string())]).await?;
    Ok(deleted.first().is_some_and(|d| d.existed))
}

/// Deletes several resources, each in its own transaction, after checking the remainder.
pub async fn delete_resources(
    store: &dyn Store,
    targets: &[(Kind, String)],
) -> Result<Vec<Deleted>, DatastoreError> {
    writes::delete(store, targets).await
}

/// A resource name from the command line or a caller, checked as the loader checks names.
pub fn check_name(name: &str) -> Result<(), DatastoreError> {
    crate::config::values::check_name(name)
        .map_err(|e| DatastoreError::Usage(format!("invalid resource name {name:?}: {e}")))
}
