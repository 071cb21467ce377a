//! The runtime's `CNI_*` environment variables, read and validated for the command before
//! anything is touched: a missing or malformed variable is the specification's code 4, with
//! the variable named.

use super::result::{CniError, Code};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Longest container ID taken (the IPAM handle adds 16 characters and must stay a key).
pub const MAX_CONTAINER_ID: usize = 256;

/// `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Version,
    Gc,
}

impl Command {
    pub fn name(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
            Command::Gc => "GC",
        }
    }
}

/// The runtime's variables, validated for the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub command: Command,
    pub container_id: String,
    /// The container's network namespace (required for ADD and CHECK, optional for DEL).
    pub netns: Option<PathBuf>,
    pub ifname: String,
    /// `CNI_ARGS` as key/value pairs.
    pub args: BTreeMap<String, String>,
    pub path: Vec<PathBuf>,
}

fn env_error(details: String) -> CniError {
    CniError::new(Code::InvalidEnvironment, details)
}

/// Reads `CNI_COMMAND` alone (VERSION, STATUS and GC need nothing else).
pub fn command(get: &dyn Fn(&str) -> Option<String>) -> Result<Command, CniError> {
    match get("CNI_COMMAND").as_deref() {
        Some("ADD") => Ok(Command::Add),
        Some("DEL") => Ok(Command::Del),
        Some("CHECK") => Ok(Command::Check),
        Some("STATUS") => Ok(Command::Status),
        Some("VERSION") => Ok(Command::Version),
        Some("GC") => Ok(Command::Gc),
        Some(other) => Err(env_error(format!(
            "CNI_COMMAND {other:?}: expected ADD, DEL, CHECK, STATUS, VERSION or GC"
        ))),
        None => Err(env_error(
            "CNI_COMMAND is not set: tortie-cni is a CNI plugin, run by a container runtime".into(),
        )),
    }
}

impl Env {
    /// Reads and checks the variables `command` needs (`get` is `std::env::var` in use).
    pub fn read(command: Command, get: &dyn Fn(&str) -> Option<String>) -> Result<Env, CniError> {
        let required = |name: &str| -> Result<String, CniError> {
            match get(name) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(env_error(format!(
                    "{name} is not set (required for {})",
                    command.name()
                ))),
            }
        };
        let container_id = required("CNI_CONTAINERID")?;
        check_container_id(&container_id)?;
        let ifname = required("CNI_IFNAME")?;
        check_ifname(&ifname)?;
        let netns = match (command, get("CNI_NETNS").filter(|v| !v.is_empty())) {
            (Command::Del, None) => None,
            (_, None) => {
                return Err(env_error(format!(
                    "CNI_NETNS is not set (required for {})",
                    command.name()
                )));
            }
            (_, Some(p)) => {
                let p = PathBuf::from(p);
                if !p.is_absolute() {
                    return Err(env_error(format!(
                        "CNI_NETNS {}: expected an absolute path to a network namespace",
                        p.display()
                    )));
                }
                Some(p)
            }
        };
        let path = required("CNI_PATH")?
            .split(':')
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        let args = parse_args(get("CNI_ARGS").as_deref().unwrap_or(""))?;
        Ok(Env {
            command,
            container_id,
            netns,
            ifname,
            args,
            path,
        })
    }

    /// The IPAM handle of this container's addresses, as Calico names it.
    pub fn handle(&self) -> String {
        format!("k8s-pod-network.{}", self.container_id)
    }

    /// `K8S_POD_NAMESPACE` and `K8S_POD_NAME`, when the runtime passed them.
    pub fn pod(&self) -> (Option<&str>, Option<&str>) {
        (
            self.args.get("K8S_POD_NAMESPACE").map(String::as_str),
            self.args.get("K8S_POD_NAME").map(String::as_str),
        )
    }
}

/// The specification's rule: alphanumeric first, then alphanumerics, `_`, `.` and `-`.
pub fn is_container_id(id: &str) -> bool {
    id.len() <= MAX_CONTAINER_ID
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn check_container_id(id: &str) -> Result<(), CniError> {
    if is_container_id(id) {
        Ok(())
    } else {
        Err(env_error(format!(
            "CNI_CONTAINERID {id:?}: expected up to {MAX_CONTAINER_ID} letters, digits, '_', '.' and '-', starting with a letter or digit"
        )))
    }
}

/// The specification's rule for interface names (and the kernel's 15 characters).
pub fn is_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

fn check_ifname(name: &str) -> Result<(), CniError> {
    if is_ifname(name) {
        Ok(())
    } else {
        Err(env_error(format!(
            "CNI_IFNAME {name:?}: an interface name has 1 to 15 characters without '/', ':' or spaces"
        )))
    }
}

/// `CNI_ARGS`: `KEY=VALUE` pairs separated by `;`.
fn parse_args(text: &str) -> Result<BTreeMap<String, String>, CniError> {
    let mut out = BTreeMap::new();
    for pair in text.split(';').filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(env_error(format!(
                "CNI_ARGS: {pair:?} is not KEY=VALUE (pairs are separated by ';')"
            )));
        };
        if k.is_empty() {
            return Err(env_error(format!("CNI_ARGS: {pair:?} has an empty key")));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    const ADD: [(&str, &str); 6] = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
        ),
    ];

    #[test]
    fn the_environment_of_an_add_is_read_with_the_pod() {
        let env = Env::read(Command::Add, &vars(&ADD)).unwrap();
        assert_eq!(env.handle(), "k8s-pod-network.abc123");
        assert_eq!(env.pod(), (Some("default"), Some("web-0")));
        assert_eq!(env.path, [PathBuf::from("/opt/cni/bin")]);
    }

    #[test]
    fn a_missing_container_id_is_code_4_naming_the_variable() {
        let without: Vec<(&str, &str)> = ADD
            .iter()
            .copied()
            .filter(|(k, _)| *k != "CNI_CONTAINERID")
            .collect();
        let e = Env::read(Command::Add, &vars(&without)).unwrap_err();
        assert_eq!(e.code, Code::InvalidEnvironment);
        assert!(e.details.contains("CNI_CONTAINERID"));
    }

    #[test]
    fn del_does_not_need_the_namespace() {
        let without: Vec<(&str, &str)> = ADD
            .iter()
            .copied()
            .filter(|(k, _)| *k != "CNI_NETNS")
            .collect();
        assert!(
            Env::read(Command::Del, &vars(&without))
                .unwrap()
                .netns
                .is_none()
        );
        assert!(Env::read(Command::Add, &vars(&without)).is_err());
    }

    #[test]
    fn a_container_id_with_a_slash_is_refused() {
        let mut v = ADD.to_vec();
        v[1] = ("CNI_CONTAINERID", "../etc");
        assert_eq!(
            Env::read(Command::Add, &vars(&v)).unwrap_err().code,
            Code::InvalidEnvironment
        );
    }

    #[test]
    fn malformed_cni_args_are_refused() {
        let mut v = ADD.to_vec();
        v[5] = ("CNI_ARGS", "K8S_POD_NAME");
        assert!(Env::read(Command::Add, &vars(&v)).is_err());
    }

    #[test]
    fn an_unknown_command_is_code_4() {
        let e = command(&vars(&[("CNI_COMMAND", "REBOOT")])).unwrap_err();
        assert_eq!(e.code, Code::InvalidEnvironment);
        assert!(command(&vars(&[])).is_err());
    }
}
