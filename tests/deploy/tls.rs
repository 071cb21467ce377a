//! Throwaway TLS material for a test etcd, made with the `openssl` command: a CA, a server
//! certificate for etcd's address and a client certificate, as an operator's etcd would need
//! (the manifests always use client TLS: the Secret tortie-etcd).

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Tls {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

#[track_caller]
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A P-256 key and a certificate signed by the CA in `dir`, with these extensions.
fn signed(dir: &Path, name: &str, subject: &str, extensions: &str) {
    let ext = format!("{name}.ext");
    std::fs::write(dir.join(&ext), extensions).expect("write the extensions");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            subject,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}

/// CA, server certificate for `server_ip`, client certificate, in `dir`.
pub fn generate(dir: &Path, server_ip: &str) -> Tls {
    std::fs::create_dir_all(dir).expect("create the TLS directory");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=tortie test CA",
        ],
    );
    signed(
        dir,
        "server",
        "/CN=etcd",
        // etcd also connects to itself (its gRPC gateway) with this certificate.
        &format!("subjectAltName=IP:{server_ip}\nextendedKeyUsage=serverAuth,clientAuth\n"),
    );
    signed(dir, "client", "/CN=tortie", "extendedKeyUsage=clientAuth\n");
    Tls {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
    }
}
