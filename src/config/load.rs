//! Reading files: documents, `kind: List`, typed deserialization with paths, then validation.
//!
//! Each file is parsed twice: once into untyped YAML values (to learn each document's kind,
//! name and whether it is a list), then each single-resource document again, straight from the
//! text into its typed resource through `serde_path_to_error`, so that an error carries the
//! field path and the line. Items of a `kind: List` are deserialized from their values (with
//! paths, without lines).

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};
use serde_path_to_error::Segment;
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{ConfigError, ConfigErrors, Source, Warning};
use super::types::{API_VERSION, Kind, Resource};
use super::{Config, Located, status, validate};

/// Reads every path (a file, or a directory whose `*.yaml`, `*.yml` and `*.json` files are
/// read in name order) and builds the configuration.
pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> Result<Config, ConfigErrors> {
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let files = if path.is_dir() {
            match list_dir(path) {
                Ok(files) => files,
                Err(e) => {
                    let label: Arc<str> = path.display().to_string().into();
                    errors.push(ConfigError::file(
                        &label,
                        format!("cannot read directory: {e}"),
                    ));
                    continue;
                }
            }
        } else {
            vec![path.to_path_buf()]
        };
        for file in files {
            let label: Arc<str> = file.display().to_string().into();
            match std::fs::read_to_string(&file) {
                Ok(text) => sources.push((label, text)),
                Err(e) => errors.push(ConfigError::file(&label, format!("cannot read: {e}"))),
            }
        }
    }
    let mut loader = Loader {
        errors,
        ..Loader::default()
    };
    for (label, text) in &sources {
        loader.text(label, text);
    }
    loader.finish()
}

/// Builds the configuration from in-memory texts, each labelled as a file would be.
pub fn load_texts(texts: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    let mut loader = Loader::default();
    for (label, text) in texts {
        loader.text(&Arc::from(*label), text);
    }
    loader.finish()
}

fn list_dir(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// A parsed resource with its raw YAML (for the field-status warnings).
pub(crate) struct Parsed<T> {
    pub located: Located<T>,
    pub raw: Value,
}

#[derive(Default)]
pub(crate) struct Loader {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<Warning>,
    pub nodes: Vec<Parsed<super::Node>>,
    pub bgp_configurations: Vec<Parsed<super::BgpConfiguration>>,
    pub bgp_peers: Vec<Parsed<super::BgpPeer>>,
    pub bgp_filters: Vec<Parsed<super::BgpFilter>>,
    pub ip_pools: Vec<Parsed<super::IpPool>>,
}

/// How a typed deserialization failed: field path, clean message, line and column.
struct Failure {
    path: Option<String>,
    message: String,
    line: Option<(usize, usize)>,
}

fn render(segments: &[Segment]) -> String {
    let mut s = String::new();
    for seg in segments {
        match seg {
            Segment::Seq { index } => s.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(key);
            }
            Segment::Unknown => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push('?');
            }
        }
    }
    s
}

fn typed<'de, T, D>(de: D) -> Result<T, Failure>
where
    T: Deserialize<'de>,
    D: Deserializer<'de, Error = serde_yaml_ng::Error>,
{
    serde_path_to_error::deserialize(de).map_err(|e| {
        let segments: Vec<Segment> = e.path().iter().cloned().collect();
        let inner = e.into_inner();
        let line = inner.location().map(|l| (l.line(), l.column()));
        let mut message = inner.to_string();
        // serde_yaml_ng puts its own copy of the path in front and the position behind; both
        // are reported separately.
        if let Some((l, c)) = line {
            if let Some(m) = message.strip_suffix(&format!(" at line {l} column {c}")) {
                message = m.to_string();
            }
        }
        for n in (1..=segments.len()).rev() {
            let prefix = format!("{}: ", render(&segments[..n]));
            if let Some(m) = message.strip_prefix(&prefix) {
                message = m.to_string();
                break;
            }
        }
        let path = render(&segments);
        Failure {
            path: Some(path).filter(|p| !p.is_empty()),
            message,
            line,
        }
    })
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn yaml_error(file: &Arc<str>, document: usize, e: &serde_yaml_ng::Error) -> ConfigError {
    let line = e.location().map(|l| (l.line(), l.column()));
    let mut message = e.to_string();
    if let Some((l, c)) = line {
        for suffix in [
            format!(" at line {l} column {c}"),
            format!(", line {l} column {c}"),
        ] {
            if let Some(m) = message.strip_suffix(&suffix) {
                message = m.to_string();
            }
        }
    }
    ConfigError {
        line,
        ..ConfigError::at(
            &Source {
                file: file.clone(),
                document,
                item: None,
            },
            format!("not valid YAML: {message}"),
        )
    }
}

const SUPPORTED: &str = "Node, BGPConfiguration, BGPPeer, BGPFilter, IPPool, or a List of them";

impl Loader {
    pub fn text(&mut self, file: &Arc<str>, text: &str) {
        // Pass 1: untyped values, one per document. A syntax error ends the file.
        let mut values = Vec::new();
        for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            match Value::deserialize(doc) {
                Ok(v) => values.push(v),
                Err(e) => {
                    self.errors.push(yaml_error(file, i + 1, &e));
                    break;
                }
            }
        }
        // Pass 2: typed, straight from the text for single resources.
        let docs = serde_yaml_ng::Deserializer::from_str(text);
        for ((i, value), doc) in values.iter().enumerate().zip(docs) {
            let source = Source {
                file: file.clone(),
                document: i + 1,
                item: None,
            };
            self.document(&source, value, Some(doc));
        }
    }

    /// One document (or list item, with `de` None: then the value itself is deserialized).
    fn document(
        &mut self,
        source: &Source,
        value: &Value,
        de: Option<serde_yaml_ng::Deserializer>,
    ) {
        if value.is_null() {
            return; // an empty document
        }
        if !value.is_mapping() {
            self.errors.push(ConfigError::at(
                source,
                "expected a resource: a mapping with apiVersion, kind, metadata and spec",
            ));
            return;
        }
        let kind_str = match value.get("kind") {
            None => {
                self.errors.push(ConfigError {
                    field: Some("kind".into()),
                    ..ConfigError::at(source, format!("missing field `kind` ({SUPPORTED})"))
                });
                return;
            }
            Some(k) => match k.as_str() {
                Some(k) => k,
                None => {
                    self.errors.push(ConfigError {
                        field: Some("kind".into()),
                        ..ConfigError::at(source, "expected a string")
                    });
                    return;
                }
            },
        };
        if source.item.is_none() {
            if let Some(of) = list_kind(kind_str) {
                self.list(source, value, kind_str, of);
                return;
            }
        }
        let Some(kind) = Kind::from_kind(kind_str) else {
            self.errors.push(ConfigError {
                kind: Some(kind_str.to_string()),
                name: value
                    .get("metadata")
                    .and_then(|m| str_at(m, "name"))
                    .map(str::to_string),
                field: Some("kind".into()),
                ..ConfigError::at(
                    source,
                    format!("unsupported kind {kind_str:?}; tortie reads {SUPPORTED}"),
                )
            });
            return;
        };
        match kind {
            Kind::Node => self.resource(kind, source, value, de, |l| &mut l.nodes),
            Kind::BgpConfiguration => {
                self.resource(kind, source, value, de, |l| &mut l.bgp_configurations)
            }
            Kind::BgpPeer => self.resource(kind, source, value, de, |l| &mut l.bgp_peers),
            Kind::BgpFilter => self.resource(kind, source, value, de, |l| &mut l.bgp_filters),
            Kind::IpPool => self.resource(kind, source, value, de, |l| &mut l.ip_pools),
        }
    }

    /// `kind: List` (any kinds) or `kind: <Kind>List` (as `calicoctl get -o yaml` prints).
    fn list(&mut self, source: &Source, value: &Value, kind_str: &str, of: Option<Kind>) {
        let err = |field: &str, message: String| ConfigError {
            kind: Some(kind_str.to_string()),
            field: Some(field.to_string()).filter(|f| !f.is_empty()),
            ..ConfigError::at(source, message)
        };
        let map = value.as_mapping().expect("checked");
        for key in map.keys() {
            let known = key
                .as_str()
                .is_some_and(|k| matches!(k, "apiVersion" | "kind" | "metadata" | "items"));
            if !known {
                let shown = key
                    .as_str()
                    .map_or_else(|| format!("{key:?}"), str::to_string);
                self.errors.push(err(
                    &shown,
                    format!("unknown field `{shown}`, expected one of `apiVersion`, `kind`, `metadata`, `items`"),
                ));
                return;
            }
        }
        match str_at(value, "apiVersion") {
            Some(API_VERSION) | Some("v1") => {}
            Some(other) => {
                self.errors.push(err(
                    "apiVersion",
                    format!("invalid value: {other:?}, expected {API_VERSION} (or v1 for a List)"),
                ));
                return;
            }
            None => {
                self.errors
                    .push(err("apiVersion", "missing field `apiVersion`".into()));
                return;
            }
        }
        let items = match value.get("items") {
            None | Some(Value::Null) => return,
            Some(Value::Sequence(items)) => items,
            Some(_) => {
                self.errors
                    .push(err("items", "expected a list of resources".into()));
                return;
            }
        };
        for (j, item) in items.iter().enumerate() {
            let item_source = Source {
                item: Some(j + 1),
                ..source.clone()
            };
            if let (Some(of), Some(k)) = (of, str_at(item, "kind")) {
                if k != of.as_str() {
                    self.errors.push(ConfigError {
                        kind: Some(k.to_string()),
                        field: Some("kind".into()),
                        ..ConfigError::at(
                            &item_source,
                            format!("a {kind_str} holds only {of} resources"),
                        )
                    });
                    continue;
                }
            }
            self.document(&item_source, item, None);
        }
    }

    fn resource<S: DeserializeOwned + Default>(
        &mut self,
        kind: Kind,
        source: &Source,
        value: &Value,
        de: Option<serde_yaml_ng::Deserializer>,
        slot: impl FnOnce(&mut Loader) -> &mut Vec<Parsed<Resource<S>>>,
    ) {
        let name = value
            .get("metadata")
            .and_then(|m| str_at(m, "name"))
            .map(str::to_string);
        if let Some((path, tag)) = find_tag(value, String::new()) {
            self.errors.push(ConfigError {
                kind: Some(kind.as_str().to_string()),
                name,
                field: Some(path),
                ..ConfigError::at(
                    source,
                    format!(
                        "YAML read `{tag}` as a tag, not as text: quote a value that starts \
                         with '!' (e.g. \"{tag}\")"
                    ),
                )
            });
            return;
        }
        let parsed: Result<Resource<S>, Failure> = match de {
            Some(de) => typed(de),
            None => typed(value.clone()),
        };
        let resource = match parsed {
            Ok(r) => r,
            Err(f) => {
                self.errors.push(ConfigError {
                    kind: Some(kind.as_str().to_string()),
                    name,
                    field: f.path,
                    line: f.line,
                    ..ConfigError::at(source, f.message)
                });
                return;
            }
        };
        if let Err(e) = super::values::check_name(&resource.metadata.name) {
            self.errors.push(ConfigError::resource(
                source,
                kind,
                &resource.metadata.name,
                "metadata.name",
                e,
            ));
            return;
        }
        if kind != Kind::Node && resource.status.is_some() {
            self.errors.push(ConfigError::resource(
                source,
                kind,
                &resource.metadata.name,
                "status",
                format!("unknown field `status` (a {kind} has none)"),
            ));
            return;
        }
        slot(self).push(Parsed {
            located: Located {
                source: source.clone(),
                resource,
            },
            raw: value.clone(),
        });
    }

    pub fn finish(mut self) -> Result<Config, ConfigErrors> {
        let mut config = Config::default();
        let mut errors = std::mem::take(&mut self.errors);
        let mut warnings = std::mem::take(&mut self.warnings);

        fn index<T>(
            kind: Kind,
            parsed: Vec<Parsed<Resource<T>>>,
            errors: &mut Vec<ConfigError>,
            raws: &mut Vec<(Kind, Source, String, Value)>,
        ) -> BTreeMap<String, Located<Resource<T>>>
        where
            T: Default,
        {
            let mut map: BTreeMap<String, Located<Resource<T>>> = BTreeMap::new();
            for p in parsed {
                let name = p.located.resource.metadata.name.clone();
                if let Some(first) = map.get(&name) {
                    errors.push(ConfigError::resource(
                        &p.located.source,
                        kind,
                        &name,
                        "metadata.name",
                        format!(
                            "duplicate {kind} {name:?}: already defined at {}",
                            first.source
                        ),
                    ));
                    continue;
                }
                raws.push((kind, p.located.source.clone(), name.clone(), p.raw));
                map.insert(name, p.located);
            }
            map
        }

        let mut raws = Vec::new();
        config.nodes = index(
            Kind::Node,
            std::mem::take(&mut self.nodes),
            &mut errors,
            &mut raws,
        );
        config.bgp_configurations = index(
            Kind::BgpConfiguration,
            std::mem::take(&mut self.bgp_configurations),
            &mut errors,
            &mut raws,
        );
        config.bgp_peers = index(
            Kind::BgpPeer,
            std::mem::take(&mut self.bgp_peers),
            &mut errors,
            &mut raws,
        );
        config.bgp_filters = index(
            Kind::BgpFilter,
            std::mem::take(&mut self.bgp_filters),
            &mut errors,
            &mut raws,
        );
        config.ip_pools = index(
            Kind::IpPool,
            std::mem::take(&mut self.ip_pools),
            &mut errors,
            &mut raws,
        );

        validate::validate(&config, &mut errors, &mut warnings);

        for (kind, source, name, raw) in &raws {
            let mut found = Vec::new();
            status::warnings_for(*kind, name, source, raw, &mut found);
            if *kind == Kind::BgpConfiguration && name != "default" {
                // A node-specific BGPConfiguration: validation warned about the fields Calico
                // ignores there; keep the table's warnings for the others only.
                found.retain(|w| validate::NODE_CONFIG_FIELDS.contains(&w.field.as_str()));
            }
            warnings.extend(found);
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        config.warnings = warnings;
        Ok(config)
    }
}

/// The first YAML tag (`!foo`) in a resource, with its path. Calico's resources use none, and
/// an unquoted selector such as `!has(x)` is read as a tag with an empty value, which would
/// otherwise silently become "no selector".
fn find_tag(value: &Value, path: String) -> Option<(String, String)> {
    match value {
        Value::Tagged(t) => Some((path, t.tag.to_string())),
        Value::Mapping(m) => m.iter().find_map(|(k, v)| {
            let key = k.as_str().map_or_else(|| format!("{k:?}"), str::to_string);
            let p = if path.is_empty() {
                key
            } else {
                format!("{path}.{key}")
            };
            find_tag(v, p)
        }),
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_tag(v, format!("{path}[{i}]"))),
        _ => None,
    }
}

/// `Some(None)` for `List`, `Some(Some(kind))` for `<Kind>List`, `None` otherwise.
fn list_kind(kind: &str) -> Option<Option<Kind>> {
    if kind == "List" {
        return Some(None);
    }
    kind.strip_suffix("List")
        .and_then(Kind::from_kind)
        .map(Some)
}
