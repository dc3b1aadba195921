//! Which pull-through distribution serves a pull that names no Berth path: daemons configured
//! with Berth as their mirror ask for upstream names as they are (docker's `registry-mirrors`
//! sends `library/busybox`; containerd's `hosts.toml` mirrors add `?ns=<upstream host>`).

use super::RepoName;

/// Routes from un-prefixed names to pull-through distributions' base paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorRoutes {
    /// The pull-through distribution that serves names no distribution serves (docker's
    /// `registry-mirrors`).
    pub default: Option<RepoName>,
    /// `ns` (an upstream host, as containerd sends it) → the pull-through distribution
    /// caching that host.
    pub by_ns: Vec<(String, RepoName)>,
}

impl MirrorRoutes {
    pub fn is_empty(&self) -> bool {
        self.default.is_none() && self.by_ns.is_empty()
    }

    /// Parses `host=base_path[,host=base_path…]`; the error names the bad entry.
    pub fn parse_ns(list: &str) -> Result<Vec<(String, RepoName)>, String> {
        let mut out: Vec<(String, RepoName)> = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((host, base)) = entry.split_once('=') else {
                return Err(format!("{entry:?} is not host=base_path"));
            };
            let host = host.trim().to_ascii_lowercase();
            let valid_host = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'));
            if !valid_host {
                return Err(format!("{host:?} is not a registry host"));
            }
            let base = RepoName::parse(base.trim()).map_err(|e| format!("{entry:?}: {e}"))?;
            if out.iter().any(|(h, _)| *h == host) {
                return Err(format!("{host:?} is given twice"));
            }
            out.push((host, base));
        }
        Ok(out)
    }

    /// The base path `ns` maps to.
    pub fn for_ns(&self, ns: &str) -> Option<&RepoName> {
        let ns = ns.trim().to_ascii_lowercase();
        // Docker Hub goes by several names
        let hub = |h: &str| matches!(h, "docker.io" | "registry-1.docker.io" | "index.docker.io");
        self.by_ns
            .iter()
            .find(|(h, _)| *h == ns || (hub(h) && hub(&ns)))
            .map(|(_, b)| b)
    }

    /// Every base path a route leads to.
    pub fn targets(&self) -> impl Iterator<Item = &RepoName> {
        self.default.iter().chain(self.by_ns.iter().map(|(_, b)| b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ns_lists_parse_and_hub_goes_by_its_aliases() {
        let by_ns = MirrorRoutes::parse_ns("docker.io=hub, quay.io=quay,127.0.0.1:5000=local/up").unwrap();
        let r = MirrorRoutes { default: None, by_ns };
        assert_eq!(r.for_ns("docker.io").unwrap().as_str(), "hub");
        assert_eq!(r.for_ns("registry-1.docker.io").unwrap().as_str(), "hub");
        assert_eq!(r.for_ns("QUAY.io").unwrap().as_str(), "quay");
        assert_eq!(r.for_ns("127.0.0.1:5000").unwrap().as_str(), "local/up");
        assert!(r.for_ns("ghcr.io").is_none());
        for bad in ["docker.io", "=hub", "a b=hub", "docker.io=Hub!", "x=a,x=b"] {
            assert!(MirrorRoutes::parse_ns(bad).is_err(), "{bad}");
        }
        assert!(MirrorRoutes::parse_ns("").unwrap().is_empty());
    }
}
