//! Per-namespace sysctls (`/proc/sys/net/...`): IP forwarding and reverse-path filtering.
//!
//! `/proc/sys/net` shows the namespace of the thread that opens the file, so reads and writes
//! go through [`Netns::run`] (a thread that entered the namespace). Paths are given as
//! components rather than a dotted string, because device names may contain dots
//! (`vxlan.tortie` → `net/ipv4/conf/vxlan.tortie/rp_filter`).

use std::path::PathBuf;

use super::error::NlError;
use super::netns::Netns;

fn sysctl_path(components: &[&str]) -> Result<PathBuf, NlError> {
    let mut p = PathBuf::from("/proc/sys");
    if components.is_empty() {
        return Err(NlError::Invalid("empty sysctl path".into()));
    }
    for c in components {
        if c.is_empty() || *c == "." || *c == ".." || c.contains('/') || c.contains('\0') {
            return Err(NlError::Invalid(format!("bad sysctl path component {c:?}")));
        }
        p.push(c);
    }
    Ok(p)
}

/// Read a sysctl in `netns` (trimmed).
pub fn read_sysctl(netns: &Netns, components: &[&str]) -> Result<String, NlError> {
    let path = sysctl_path(components)?;
    let p = path.clone();
    netns
        .run(move || std::fs::read_to_string(&p))?
        .map(|s| s.trim().to_string())
        .map_err(|source| NlError::Sysctl { path, source })
}

/// Write a sysctl in `netns`. Returns whether the value changed (it is read first, so an
/// unchanged value is not rewritten).
pub fn write_sysctl(netns: &Netns, components: &[&str], value: &str) -> Result<bool, NlError> {
    let path = sysctl_path(components)?;
    let p = path.clone();
    let value = value.to_string();
    netns
        .run(move || -> std::io::Result<bool> {
            if std::fs::read_to_string(&p)?.trim() == value.trim() {
                return Ok(false);
            }
            std::fs::write(&p, format!("{value}\n"))?;
            Ok(true)
        })?
        .map_err(|source| NlError::Sysctl { path, source })
}

/// `net.ipv4.ip_forward` and/or `net.ipv6.conf.all.forwarding`.
pub fn set_ip_forward(netns: &Netns, ipv4: bool, ipv6: bool) -> Result<(), NlError> {
    if ipv4 {
        write_sysctl(netns, &["net", "ipv4", "ip_forward"], "1")?;
    }
    if ipv6 {
        write_sysctl(netns, &["net", "ipv6", "conf", "all", "forwarding"], "1")?;
    }
    Ok(())
}

/// `net.ipv4.conf.DEV.rp_filter` (0 off, 1 strict, 2 loose). The kernel applies the larger of
/// this and `conf.all.rp_filter`.
pub fn set_rp_filter(netns: &Netns, device: &str, mode: u8) -> Result<bool, NlError> {
    if mode > 2 {
        return Err(NlError::Invalid(format!("rp_filter mode {mode}")));
    }
    write_sysctl(
        netns,
        &["net", "ipv4", "conf", device, "rp_filter"],
        &mode.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            sysctl_path(&["net", "ipv4", "conf", "vxlan.tortie", "rp_filter"]).unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/vxlan.tortie/rp_filter")
        );
        assert!(sysctl_path(&["net", ".."]).is_err());
        assert!(sysctl_path(&["net/ipv4"]).is_err());
        assert!(sysctl_path(&[]).is_err());
    }

    #[test]
    fn read_in_current_namespace() {
        let v = read_sysctl(&Netns::Current, &["net", "ipv4", "ip_forward"]).unwrap();
        assert!(v == "0" || v == "1");
    }
}
