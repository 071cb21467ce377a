//! BGP passwords. Calico reads `password.secretKeyRef {name, key}` from a Kubernetes Secret;
//! tortie reads it from a file: **`<secrets_dir>/<name>/<key>`**, which is the layout a
//! Secret mounted as a volume has (`secrets_dir` is the agent's parameter). The file holds the
//! password; one trailing newline (`\n` or `\r\n`) is dropped, nothing else is changed.
//!
//! Names and keys are checked when the configuration loads (no `/`, no `..`), so a reference
//! can never leave `secrets_dir`. Reading is a separate step, [`read_password`], so that a
//! missing file is reported clearly and only for the peers that need it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::types::SecretKeyRef;

/// The longest TCP MD5 key Linux accepts (`TCP_MD5SIG_MAXKEYLEN`); Calico documents the same
/// 80-character limit.
pub const MAX_PASSWORD_LEN: usize = 80;

impl SecretKeyRef {
    /// `<secrets_dir>/<name>/<key>`.
    pub fn path(&self, secrets_dir: &Path) -> PathBuf {
        secrets_dir.join(&self.name).join(&self.key)
    }
}

impl fmt::Display for SecretKeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "secretKeyRef {{name: {:?}, key: {:?}}}",
            self.name, self.key
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "BGP password file {path} does not exist ({secret}); create it, or mount the Secret \
         {name:?} at {dir}/{name}",
        path = .path.display(),
        dir = .secrets_dir.display(),
    )]
    Missing {
        path: PathBuf,
        secrets_dir: PathBuf,
        name: String,
        secret: String,
    },
    #[error("BGP password file {path} ({secret}): {source}", path = .path.display())]
    Unreadable {
        path: PathBuf,
        secret: String,
        source: io::Error,
    },
    #[error("BGP password file {path} ({secret}) is empty", path = .path.display())]
    Empty { path: PathBuf, secret: String },
    #[error(
        "BGP password in {path} ({secret}) is {len} bytes; TCP MD5 keys are at most {max}",
        path = .path.display(),
        max = MAX_PASSWORD_LEN,
    )]
    TooLong {
        path: PathBuf,
        secret: String,
        len: usize,
    },
}

/// Reads the password a `secretKeyRef` names. `Ok(None)` only for an `optional: true`
/// reference whose file does not exist (no password, as Kubernetes treats an optional key).
pub fn read_password(r: &SecretKeyRef, secrets_dir: &Path) -> Result<Option<String>, SecretError> {
    let path = r.path(secrets_dir);
    let secret = r.to_string();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if r.optional == Some(true) {
                return Ok(None);
            }
            return Err(SecretError::Missing {
                path,
                secrets_dir: secrets_dir.to_path_buf(),
                name: r.name.clone(),
                secret,
            });
        }
        Err(source) => {
            return Err(SecretError::Unreadable {
                path,
                secret,
                source,
            });
        }
    };
    let mut text = String::from_utf8(bytes).map_err(|_| SecretError::Unreadable {
        path: path.clone(),
        secret: secret.clone(),
        source: io::Error::new(io::ErrorKind::InvalidData, "not UTF-8"),
    })?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(SecretError::Empty { path, secret });
    }
    if text.len() > MAX_PASSWORD_LEN {
        return Err(SecretError::TooLong {
            path,
            secret,
            len: text.len(),
        });
    }
    Ok(Some(text))
}

/// Checks a secret name and key at load time: a single path component each.
pub(crate) fn check_ref(r: &SecretKeyRef) -> Result<(), (&'static str, String)> {
    super::values::check_name(&r.name).map_err(|e| ("name", e))?;
    super::values::check_name(&r.key).map_err(|e| ("key", e))?;
    Ok(())
}
