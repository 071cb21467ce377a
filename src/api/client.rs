//! Connecting to an agent's API socket, with errors that tell an operator what to do.
//!
//! The socket is probed with a plain connect first: a missing file, a refusing socket and a
//! permission problem each get their own message, instead of the generic transport error
//! tonic would report. This file depends on nothing else in the binary, so tests include it
//! as it is.

use hyper_util::rt::TokioIo;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};
use tortie_proto::v1::tortie_client::TortieClient;

/// How long a connection attempt may take; the socket is local, so this only matters for an
/// agent that is frozen or overloaded.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one call may take before the client gives up.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest reply the client takes.
pub const MAX_REPLY: usize = 64 << 20;

/// Why no API client could be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no tortie agent is serving {} (is it running? see --api-socket)", .0.display())]
    NotServing(PathBuf),
    #[error("permission denied on {} (run as root)", .0.display())]
    PermissionDenied(PathBuf),
    #[error("cannot connect to the tortie agent on {}: {reason}", path.display())]
    Connect { path: PathBuf, reason: String },
}

fn classify(path: &Path, e: &std::io::Error) -> ClientError {
    match e.kind() {
        // A socket file nobody listens on is what an agent that crashed leaves behind.
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => {
            ClientError::NotServing(path.to_path_buf())
        }
        ErrorKind::PermissionDenied => ClientError::PermissionDenied(path.to_path_buf()),
        _ => ClientError::Connect {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    }
}

/// Opens a client on the agent's unix socket `socket`.
pub async fn connect(socket: &Path) -> Result<TortieClient<Channel>, ClientError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(socket)).await {
        Ok(Ok(_probe)) => {}
        Ok(Err(e)) => return Err(classify(socket, &e)),
        Err(_) => {
            return Err(ClientError::Connect {
                path: socket.to_path_buf(),
                reason: format!("no answer within {CONNECT_TIMEOUT:?}"),
            });
        }
    }
    // The URI is required by the HTTP/2 layer but names nothing: every connection goes to
    // the socket.
    let endpoint = Endpoint::from_static("http://tortie.invalid")
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT);
    let path = socket.to_path_buf();
    let connector = tower::service_fn(move |_: Uri| {
        let path = path.clone();
        async move { UnixStream::connect(path).await.map(TokioIo::new) }
    });
    let channel = endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| {
            // The io::Error, when there is one, says more than the transport's wrapper.
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = source {
                if let Some(io) = s.downcast_ref::<std::io::Error>() {
                    return classify(socket, io);
                }
                source = s.source();
            }
            ClientError::Connect {
                path: socket.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
    // Pages are sized to stay under gRPC's usual 4 MiB, but a client should not fail on a
    // larger reply from an agent that pages differently.
    Ok(TortieClient::new(channel).max_decoding_message_size(MAX_REPLY))
}

#[cfg(test)]
mod tests {
    //! The tests run as root, for whom a 0600 socket never refuses a connection: the
    //! permission case is only reached here, from the errors connect(2) returns.
    use super::*;

    fn sock() -> PathBuf {
        PathBuf::from("/run/tortie/tortie.sock")
    }

    #[test]
    fn a_missing_socket_file_is_no_agent_serving() {
        let e = classify(&sock(), &std::io::Error::from(ErrorKind::NotFound));
        assert!(
            matches!(&e, ClientError::NotServing(p) if *p == sock()),
            "{e:?}"
        );
    }

    #[test]
    fn a_refused_connection_is_no_agent_serving() {
        let e = classify(&sock(), &std::io::Error::from(ErrorKind::ConnectionRefused));
        assert!(
            matches!(&e, ClientError::NotServing(p) if *p == sock()),
            "{e:?}"
        );
        assert!(e.to_string().contains("is it running?"), "{e}");
    }

    #[test]
    fn eacces_on_a_root_only_socket_says_run_as_root() {
        let e = classify(&sock(), &std::io::Error::from_raw_os_error(libc::EACCES));
        assert!(
            matches!(&e, ClientError::PermissionDenied(p) if *p == sock()),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "permission denied on /run/tortie/tortie.sock (run as root)"
        );
    }

    #[test]
    fn any_other_error_is_a_connect_error_with_its_reason() {
        let io = std::io::Error::from_raw_os_error(libc::ENOTDIR);
        let e = classify(&sock(), &io);
        match &e {
            ClientError::Connect { path, reason } => {
                assert_eq!(*path, sock());
                assert_eq!(*reason, io.to_string());
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn connecting_to_a_socket_file_nobody_listens_on_is_no_agent_serving() {
        let dir = std::env::temp_dir().join(format!("tortie-client-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("api.sock");
        // A listener that is gone leaves its file behind, as a crashed agent does.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let e = connect(&path).await.err();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            matches!(&e, Some(ClientError::NotServing(p)) if *p == path),
            "{e:?}"
        );
    }
}
