//! Errors and warnings, each naming the file, the document (and list item), the resource
//! when known, and the field path.

use std::fmt;
use std::sync::Arc;

use super::types::Kind;

/// Where a resource came from: a file (as the caller named it), the 1-based document in that
/// file, and the 1-based item when the document is a `kind: List`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub file: Arc<str>,
    pub document: usize,
    pub item: Option<usize>,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, document {}", self.file, self.document)?;
        if let Some(item) = self.item {
            write!(f, ", item {item}")?;
        }
        Ok(())
    }
}

/// One problem with the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (always known).
    pub file: Arc<str>,
    /// 1-based document, when the problem is inside one.
    pub document: Option<usize>,
    /// 1-based list item, when the document is a `kind: List`.
    pub item: Option<usize>,
    /// The resource's kind and name, when they could be read.
    pub kind: Option<String>,
    pub name: Option<String>,
    /// Dotted field path from the resource's root (`spec.asNumber`, `spec.exportV4[0].cidr`).
    pub field: Option<String>,
    pub message: String,
    /// 1-based line and column in the file, when the YAML parser knew them.
    pub line: Option<(usize, usize)>,
}

impl ConfigError {
    pub(crate) fn file(file: &Arc<str>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.clone(),
            document: None,
            item: None,
            kind: None,
            name: None,
            field: None,
            message: message.into(),
            line: None,
        }
    }

    pub(crate) fn at(source: &Source, message: impl Into<String>) -> ConfigError {
        ConfigError {
            document: Some(source.document),
            item: source.item,
            ..ConfigError::file(&source.file, message)
        }
    }

    pub(crate) fn resource(
        source: &Source,
        kind: Kind,
        name: &str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            kind: Some(kind.as_str().to_string()),
            name: Some(name.to_string()),
            field: Some(field.into()).filter(|f: &String| !f.is_empty()),
            ..ConfigError::at(source, message)
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(doc) = self.document {
            write!(f, ", document {doc}")?;
        }
        if let Some(item) = self.item {
            write!(f, ", item {item}")?;
        }
        match (&self.kind, &self.name) {
            (Some(kind), Some(name)) => write!(f, " ({kind} {name:?})")?,
            (Some(kind), None) => write!(f, " ({kind})")?,
            _ => {}
        }
        f.write_str(": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some((line, column)) = self.line {
            write!(f, " (line {line}, column {column})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration; the agent refuses to start on any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A field that was accepted but has no effect (yet, or in that place).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub source: Source,
    pub kind: Kind,
    pub name: String,
    /// Dotted field path from the resource's root.
    pub field: String,
    /// Why it has no effect, e.g. "accepted, not yet acted on".
    pub reason: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} {:?}): {}: {}",
            self.source, self.kind, self.name, self.field, self.reason
        )
    }
}
