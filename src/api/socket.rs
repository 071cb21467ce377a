//! The API's socket file: its directory, the check for an agent already serving there, a bind
//! that never exposes the socket with looser permissions than 0600, and a removal that only
//! ever deletes the file this agent bound.
//!
//! The socket is bound under a temporary name, chmod'ed to 0600 and then renamed onto the
//! configured path: chmod after a bind on the final path would leave a moment in which any
//! local user could connect (the directory is 0755 so that tools can find the socket).

use super::ApiError;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::net::{UnixListener, UnixStream};
use tracing::{info, warn};

/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// Which file this agent bound, so that it removes only that one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(path: &Path) -> Option<FileId> {
        std::fs::symlink_metadata(path).ok().map(|m| FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// Creates the socket's directory (0755) when it is missing.
fn ensure_dir(socket: &Path) -> Result<(), ApiError> {
    let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if dir.is_dir() {
        return Ok(());
    }
    // The umask may have narrowed the mode: clients running as other users (with the right
    // permissions on the socket) must still be able to reach it.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)))
        .map_err(|source| ApiError::CreateDir {
            dir: dir.to_path_buf(),
            source,
        })
}

/// Fails when an agent answers on `socket`; a socket file nobody answers on is left for the
/// rename in [`bind`] to replace.
async fn refuse_live_socket(socket: &Path) -> Result<(), ApiError> {
    let meta = match std::fs::symlink_metadata(socket) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ApiError::Probe {
                path: socket.to_path_buf(),
                source,
            });
        }
    };
    if !meta.file_type().is_socket() {
        // Never delete what may be someone's file because of a wrong --api-socket.
        return Err(ApiError::NotASocket(socket.to_path_buf()));
    }
    match UnixStream::connect(socket).await {
        Ok(_) => Err(ApiError::AnotherAgent(socket.to_path_buf())),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            info!(socket = %socket.display(), "replacing a stale API socket (nothing answers on it)");
            Ok(())
        }
        Err(source) => Err(ApiError::Probe {
            path: socket.to_path_buf(),
            source,
        }),
    }
}

/// The temporary name the socket is bound under before it is renamed into place.
fn temporary_name(socket: &Path) -> Result<PathBuf, ApiError> {
    let name = socket
        .file_name()
        .ok_or_else(|| ApiError::NoFileName(socket.to_path_buf()))?;
    let mut tmp = name.to_os_string();
    tmp.push(format!(".{}.tmp", std::process::id()));
    Ok(socket.with_file_name(tmp))
}

/// Prepares the directory, refuses a path another agent serves, and binds `socket` with mode
/// 0600.
pub(super) async fn bind(socket: &Path) -> Result<(UnixListener, FileId), ApiError> {
    let tmp = temporary_name(socket)?;
    let longest = socket.as_os_str().len().max(tmp.as_os_str().len());
    if longest > MAX_SOCKET_PATH {
        return Err(ApiError::PathTooLong {
            path: socket.to_path_buf(),
            len: socket.as_os_str().len(),
            max: MAX_SOCKET_PATH - (tmp.as_os_str().len() - socket.as_os_str().len()),
        });
    }
    ensure_dir(socket)?;
    refuse_live_socket(socket).await?;
    // A leftover of a crash between bind and rename, under our own PID: ours to remove.
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp).map_err(|source| ApiError::Bind {
        path: socket.to_path_buf(),
        source,
    })?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&tmp, socket));
    if let Err(source) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(ApiError::Bind {
            path: socket.to_path_buf(),
            source,
        });
    }
    let id = FileId::of(socket).ok_or_else(|| ApiError::Bind {
        path: socket.to_path_buf(),
        source: std::io::Error::new(ErrorKind::NotFound, "the socket vanished after the bind"),
    })?;
    Ok((listener, id))
}

/// Removes `socket` if it is still the file this agent bound (a later agent may have taken
/// the path over after this one stopped answering).
pub(super) fn remove_if_ours(socket: &Path, id: FileId) {
    if FileId::of(socket) != Some(id) {
        return;
    }
    if let Err(e) = std::fs::remove_file(socket) {
        if e.kind() != ErrorKind::NotFound {
            warn!(socket = %socket.display(), error = %e, "cannot remove the API socket");
        }
    }
}
