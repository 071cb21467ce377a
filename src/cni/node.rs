//! Facts about the node the plugin runs on: its name (as Calico finds it) and its underlay
//! MTU (what the pod's MTU is derived from).

use super::config::{NetConf, check_nodename};
use super::iproute::{self, Ns};
use super::result::{CniError, Code};

/// Used when the node has no default route to measure.
pub const FALLBACK_UNDERLAY_MTU: u32 = 1500;

/// The node's name: `nodename` of the configuration, else the contents of `nodename_file`
/// (which the agent's DaemonSet writes), else the host name, lower-cased.
pub fn name(conf: &NetConf) -> Result<String, CniError> {
    let invalid = |from: String, n: &str, e: String| {
        CniError::new(
            Code::InvalidConfig,
            format!("node name {n:?} from {from}: {e}"),
        )
    };
    if let Some(n) = &conf.nodename {
        return Ok(n.clone());
    }
    match std::fs::read_to_string(&conf.nodename_file) {
        Ok(text) if !text.trim().is_empty() => {
            let n = text.trim().to_string();
            let from = conf.nodename_file.display().to_string();
            check_nodename(&n).map_err(|e| invalid(from, &n, e))?;
            return Ok(n);
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(CniError::new(
                Code::Io,
                format!("reading {}: {e}", conf.nodename_file.display()),
            ));
        }
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_err(|e| CniError::new(Code::Io, format!("reading the host name: {e}")))?
        .trim()
        .to_ascii_lowercase();
    check_nodename(&host).map_err(|e| invalid("the host name".into(), &host, e))?;
    Ok(host)
}

/// The MTU of the device(s) of the host's default route(s), the smallest when several (ECMP);
/// [`FALLBACK_UNDERLAY_MTU`] when there is no default route.
pub fn underlay_mtu() -> u32 {
    let measured = (|| -> Result<Option<u32>, iproute::DataplaneError> {
        let mut best: Option<u32> = None;
        for r in iproute::json(Ns::Host, &["-4", "route", "show", "default"])? {
            let Some(dev) = r.get("dev").and_then(|d| d.as_str()) else {
                continue;
            };
            let mtu = iproute::link(Ns::Host, dev)?
                .and_then(|l| l.get("mtu")?.as_u64())
                .and_then(|m| u32::try_from(m).ok());
            if let Some(m) = mtu {
                best = Some(best.map_or(m, |b| b.min(m)));
            }
        }
        Ok(best)
    })();
    match measured {
        Ok(Some(m)) => m,
        Ok(None) => {
            tracing::warn!(
                "no IPv4 default route to measure the underlay MTU; assuming {FALLBACK_UNDERLAY_MTU} (set mtu in the network configuration)"
            );
            FALLBACK_UNDERLAY_MTU
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot measure the underlay MTU; assuming {FALLBACK_UNDERLAY_MTU}");
            FALLBACK_UNDERLAY_MTU
        }
    }
}
