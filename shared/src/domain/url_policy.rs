//! Which addresses a remote may make Berth contact: the policy against server-side request
//! forgery (a remote URL, a redirect or a token realm that points Berth at the cloud's instance
//! metadata service, at Berth's own machine or at another machine of its network).
//!
//! - Always refused: the unspecified addresses (`0.0.0.0/8`, `::`), link-local
//!   (`169.254.0.0/16`, `fe80::/10`), the cloud metadata services ([`METADATA_V4`],
//!   [`METADATA_V6`]), multicast, broadcast, the reserved `240.0.0.0/4`, and every IPv6 form
//!   that embeds a refused IPv4 address: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-translated
//!   (`::ffff:0:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`,
//!   `64:ff9b:1::/48`) and 6to4 (`2002::/16`).
//! - Loopback and private ranges (`127.0.0.0/8`, `::1`, `10.0.0.0/8`, `172.16.0.0/12`,
//!   `192.168.0.0/16`, `100.64.0.0/10`, `fc00::/7`, `fec0::/10`): allowed with
//!   [`PrivateNetworks::Allow`] (the default: a mirror on a private network is normal),
//!   refused with [`PrivateNetworks::Deny`].
//! - URLs: `http` and `https` only, with the host as the WHATWG URL parser (the `url` crate,
//!   which the upstream client uses too) reads it, so `http://2130706433/` and
//!   `http://0x7f.1/` are `127.0.0.1`. An IP-literal host is judged by its address. A name is
//!   judged by the addresses it resolves to when it is contacted (the upstream client's
//!   resolver), since DNS may answer differently later; only names whose addresses are known
//!   without asking DNS (`localhost`, the metadata services' names) are judged by name.
//!
//! Layering: `domain`, pure. The management service checks remotes with it; the upstream
//! client checks every address it connects to with it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Cloud metadata services on IPv4: AWS, GCP, Azure, OpenStack and others (`169.254.169.254`),
/// ECS task metadata (`169.254.170.2`), the EKS Pod Identity agent (`169.254.170.23`), Alibaba
/// Cloud (`100.100.100.200`), Oracle Cloud (`192.0.0.192`) and Azure's host wire server
/// (`168.63.129.16`).
pub const METADATA_V4: [Ipv4Addr; 6] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(169, 254, 170, 23),
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(192, 0, 0, 192),
    Ipv4Addr::new(168, 63, 129, 16),
];

/// Cloud metadata services on IPv6: AWS instance metadata (`fd00:ec2::254`) and the EKS Pod
/// Identity agent (`fd00:ec2::23`).
pub const METADATA_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254),
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x23),
];

/// Names of metadata services, refused without resolving them.
const METADATA_NAMES: [&str; 4] = [
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
];

/// Whether remotes may reach loopback and private network addresses
/// (`BERTH_REMOTE_PRIVATE_NETWORKS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrivateNetworks {
    /// Loopback and private ranges are allowed (the default).
    #[default]
    Allow,
    /// Loopback and private ranges are refused too.
    Deny,
}

impl PrivateNetworks {
    /// `allow` or `deny` (any case); `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "allow" => Some(PrivateNetworks::Allow),
            "deny" => Some(PrivateNetworks::Deny),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PrivateNetworks::Allow => "allow",
            PrivateNetworks::Deny => "deny",
        }
    }
}

/// What kind of address an IP address is, as far as the policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    Public,
    /// `127.0.0.0/8`, `::1` (and `localhost`).
    Loopback,
    /// `10/8`, `172.16/12`, `192.168/16`, `100.64/10`, `fc00::/7`, `fec0::/10`.
    Private,
    /// `169.254/16`, `fe80::/10`.
    LinkLocal,
    /// A cloud metadata service.
    Metadata,
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `240.0.0.0/4`.
    Reserved,
}

impl AddressKind {
    /// The kind of `ip`; an IPv6 address that embeds an IPv4 one is the kind of that.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => v4_kind(v4),
            IpAddr::V6(v6) => v6_kind(v6),
        }
    }

    /// Loopback or a private range: allowed unless private networks are denied.
    pub fn is_private(self) -> bool {
        matches!(self, AddressKind::Loopback | AddressKind::Private)
    }

    /// Refused whatever the setting.
    pub fn is_always_refused(self) -> bool {
        !matches!(self, AddressKind::Public) && !self.is_private()
    }

    fn describe(self) -> &'static str {
        match self {
            AddressKind::Public => "a public address",
            AddressKind::Loopback => "a loopback address",
            AddressKind::Private => "a private network address",
            AddressKind::LinkLocal => "a link-local address",
            AddressKind::Metadata => "a cloud metadata service address",
            AddressKind::Unspecified => "an unspecified address",
            AddressKind::Multicast => "a multicast address",
            AddressKind::Broadcast => "the broadcast address",
            AddressKind::Reserved => "a reserved address",
        }
    }

    /// How bad: the worse of two readings of one address wins.
    fn severity(self) -> u8 {
        match self {
            AddressKind::Public => 0,
            AddressKind::Private => 1,
            AddressKind::Loopback => 2,
            AddressKind::Metadata => 4,
            _ => 3,
        }
    }
}

fn v4_kind(ip: Ipv4Addr) -> AddressKind {
    let [a, b, ..] = ip.octets();
    if METADATA_V4.contains(&ip) {
        AddressKind::Metadata
    } else if a == 0 {
        AddressKind::Unspecified
    } else if a == 127 {
        AddressKind::Loopback
    } else if a == 169 && b == 254 {
        AddressKind::LinkLocal
    } else if ip.is_broadcast() {
        AddressKind::Broadcast
    } else if ip.is_multicast() {
        AddressKind::Multicast
    } else if a >= 240 {
        AddressKind::Reserved
    } else if a == 10
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 100 && (64..128).contains(&b))
    {
        AddressKind::Private
    } else {
        AddressKind::Public
    }
}

fn v6_kind(ip: Ipv6Addr) -> AddressKind {
    let s = ip.segments();
    if METADATA_V6.contains(&ip) {
        AddressKind::Metadata
    } else if ip.is_unspecified() {
        AddressKind::Unspecified
    } else if ip.is_loopback() {
        AddressKind::Loopback
    } else if let Some(kind) =
        embedded_v4(ip)
            .into_iter()
            .map(v4_kind)
            .reduce(|a, b| if b.severity() > a.severity() { b } else { a })
    {
        kind
    } else if s[0] & 0xffc0 == 0xfe80 {
        AddressKind::LinkLocal
    } else if s[0] & 0xff00 == 0xff00 {
        AddressKind::Multicast
    } else if s[0] & 0xfe00 == 0xfc00 || s[0] & 0xffc0 == 0xfec0 {
        AddressKind::Private
    } else {
        AddressKind::Public
    }
}

/// The IPv4 addresses an IPv6 address carries (a local-use NAT64 address has two readings).
fn embedded_v4(ip: Ipv6Addr) -> Vec<Ipv4Addr> {
    let v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    match ip.segments() {
        // IPv4-mapped, IPv4-translated, IPv4-compatible, NAT64 well-known prefix
        [0, 0, 0, 0, 0, 0xffff, h, l]
        | [0, 0, 0, 0, 0xffff, 0, h, l]
        | [0, 0, 0, 0, 0, 0, h, l]
        | [0x64, 0xff9b, 0, 0, 0, 0, h, l] => vec![v4(h, l)],
        // NAT64 local-use prefix, as a /48 (the address around the `u` octet) or as a /96; a
        // reading that falls on zeros is not the one in use
        [0x64, 0xff9b, 1, a, b, c, h, l] => [v4(a, ((b & 0xff) << 8) | (c >> 8)), v4(h, l)]
            .into_iter()
            .filter(|a| a.octets()[0] != 0)
            .collect(),
        // 6to4
        [0x2002, h, l, ..] => vec![v4(h, l)],
        _ => Vec::new(),
    }
}

/// Why the policy refuses a URL or an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not a valid URL: {0}")]
    Invalid(String),
    #[error("the scheme {0:?} is not http or https")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    /// An address (an IP-literal host, or one a name resolved to).
    #[error("{}", address_message(*.ip, *.kind))]
    Address { ip: IpAddr, kind: AddressKind },
    /// A name known to stand for a refused address.
    #[error("{name} names {}, {}", .kind.describe(), why(*.kind))]
    Name { name: String, kind: AddressKind },
}

fn why(kind: AddressKind) -> &'static str {
    if kind.is_private() {
        "which the remote URL policy refuses with BERTH_REMOTE_PRIVATE_NETWORKS=deny"
    } else {
        "which the remote URL policy always refuses"
    }
}

fn address_message(ip: IpAddr, kind: AddressKind) -> String {
    let carried = match ip {
        IpAddr::V6(v6) if !v6.is_loopback() && !v6.is_unspecified() => embedded_v4(v6)
            .into_iter()
            .find(|a| v4_kind(*a) == kind)
            .map(|a| format!(" (it carries the IPv4 address {a})")),
        _ => None,
    };
    format!(
        "{ip}{} is {}, {}",
        carried.unwrap_or_default(),
        kind.describe(),
        why(kind)
    )
}

/// The remote URL policy: which addresses a remote may make Berth contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UrlPolicy {
    pub private_networks: PrivateNetworks,
}

impl UrlPolicy {
    pub fn new(private_networks: PrivateNetworks) -> Self {
        UrlPolicy { private_networks }
    }

    /// Whether `ip` may be contacted.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        let kind = AddressKind::of(ip);
        if self.refuses(kind) {
            Err(Refusal::Address { ip, kind })
        } else {
            Ok(())
        }
    }

    /// Whether a host name may be contacted without resolving it: `Ok` for every name but
    /// `localhost` (and `*.localhost`) when private networks are denied and the metadata
    /// services' names.
    pub fn check_name(&self, name: &str) -> Result<(), Refusal> {
        let n = name.trim_end_matches('.').to_ascii_lowercase();
        let kind = if n == "localhost" || n.ends_with(".localhost") {
            AddressKind::Loopback
        } else if METADATA_NAMES.contains(&n.as_str()) {
            AddressKind::Metadata
        } else {
            return Ok(());
        };
        if self.refuses(kind) {
            Err(Refusal::Name {
                name: name.to_owned(),
                kind,
            })
        } else {
            Ok(())
        }
    }

    /// A remote's URL, as given: parsed as the upstream client parses it, `http` or `https`,
    /// its host an allowed address or a name not known to be refused. Names are not resolved.
    pub fn check_url(&self, raw: &str) -> Result<Url, Refusal> {
        let url = Url::parse(raw.trim()).map_err(|e| Refusal::Invalid(e.to_string()))?;
        self.check_scheme(&url)?;
        match url.host() {
            None => Err(Refusal::NoHost),
            Some(Host::Domain(name)) => self.check_name(name),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
        }?;
        Ok(url)
    }

    /// A URL about to be requested: `http` or `https`, and an IP-literal host allowed. A name
    /// is left to the resolver, which checks the addresses it finds.
    pub fn check_request(&self, url: &Url) -> Result<(), Refusal> {
        self.check_scheme(url)?;
        match url.host() {
            None => Err(Refusal::NoHost),
            Some(Host::Domain(_)) => Ok(()),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
        }
    }

    fn check_scheme(&self, url: &Url) -> Result<(), Refusal> {
        match url.scheme() {
            "http" | "https" => Ok(()),
            s => Err(Refusal::Scheme(s.to_owned())),
        }
    }

    fn refuses(&self, kind: AddressKind) -> bool {
        kind.is_always_refused() || (kind.is_private() && self.private_networks == PrivateNetworks::Deny)
    }
}

impl fmt::Display for UrlPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "private networks {}", self.private_networks.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: UrlPolicy = UrlPolicy {
        private_networks: PrivateNetworks::Allow,
    };
    const DENY: UrlPolicy = UrlPolicy {
        private_networks: PrivateNetworks::Deny,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn kind(s: &str) -> AddressKind {
        AddressKind::of(ip(s))
    }

    /// Refused under both settings.
    const ALWAYS_REFUSED: [(&str, AddressKind); 37] = [
        ("169.254.169.254", AddressKind::Metadata),
        ("169.254.170.2", AddressKind::Metadata),
        ("169.254.170.23", AddressKind::Metadata),
        ("100.100.100.200", AddressKind::Metadata),
        ("192.0.0.192", AddressKind::Metadata),
        ("168.63.129.16", AddressKind::Metadata),
        ("fd00:ec2::254", AddressKind::Metadata),
        ("fd00:ec2::23", AddressKind::Metadata),
        ("169.254.0.1", AddressKind::LinkLocal),
        ("169.254.255.255", AddressKind::LinkLocal),
        ("fe80::1", AddressKind::LinkLocal),
        ("febf:ffff::1", AddressKind::LinkLocal),
        ("0.0.0.0", AddressKind::Unspecified),
        ("0.1.2.3", AddressKind::Unspecified),
        ("::", AddressKind::Unspecified),
        ("224.0.0.1", AddressKind::Multicast),
        ("239.255.255.250", AddressKind::Multicast),
        ("ff02::1", AddressKind::Multicast),
        ("ff05::1:3", AddressKind::Multicast),
        ("255.255.255.255", AddressKind::Broadcast),
        ("240.0.0.1", AddressKind::Reserved),
        // IPv6 forms of refused IPv4 addresses
        ("::ffff:169.254.169.254", AddressKind::Metadata),
        ("::ffff:a9fe:a9fe", AddressKind::Metadata),
        ("::169.254.169.254", AddressKind::Metadata),
        ("::ffff:0:169.254.169.254", AddressKind::Metadata),
        ("64:ff9b::169.254.169.254", AddressKind::Metadata),
        ("64:ff9b::a9fe:a9fe", AddressKind::Metadata),
        ("64:ff9b:1:a9fe:a9:fe00::", AddressKind::Metadata),
        ("64:ff9b:1::a9fe:a9fe", AddressKind::Metadata),
        ("2002:a9fe:a9fe::1", AddressKind::Metadata),
        ("::ffff:100.100.100.200", AddressKind::Metadata),
        ("::ffff:169.254.1.1", AddressKind::LinkLocal),
        ("::ffff:0.0.0.0", AddressKind::Unspecified),
        ("::0.0.0.2", AddressKind::Unspecified),
        ("::ffff:224.0.0.1", AddressKind::Multicast),
        ("64:ff9b::255.255.255.255", AddressKind::Broadcast),
        ("::ffff:240.0.0.1", AddressKind::Reserved),
    ];

    /// Allowed by default, refused with `deny`.
    const PRIVATE: [(&str, AddressKind); 22] = [
        ("127.0.0.1", AddressKind::Loopback),
        ("127.255.0.9", AddressKind::Loopback),
        ("::1", AddressKind::Loopback),
        ("::ffff:127.0.0.1", AddressKind::Loopback),
        ("64:ff9b::7f00:1", AddressKind::Loopback),
        ("10.0.0.1", AddressKind::Private),
        ("10.255.255.255", AddressKind::Private),
        ("172.16.0.1", AddressKind::Private),
        ("172.31.255.254", AddressKind::Private),
        ("192.168.1.1", AddressKind::Private),
        ("100.64.0.1", AddressKind::Private),
        ("100.127.255.254", AddressKind::Private),
        ("fc00::1", AddressKind::Private),
        ("fd12:3456::1", AddressKind::Private),
        ("fd00:ec2::1", AddressKind::Private),
        ("fec0::1", AddressKind::Private),
        ("::ffff:10.1.2.3", AddressKind::Private),
        ("::ffff:192.168.0.1", AddressKind::Private),
        ("::10.1.2.3", AddressKind::Private),
        ("64:ff9b::10.0.0.1", AddressKind::Private),
        ("2002:c0a8:101::1", AddressKind::Private),
        ("2002:7f00:1::1", AddressKind::Loopback),
    ];

    /// Allowed under both settings.
    const PUBLIC: [&str; 15] = [
        "1.1.1.1",
        "8.8.8.8",
        "172.15.255.255",
        "172.32.0.1",
        "192.169.0.1",
        "100.63.255.255",
        "100.128.0.1",
        "169.253.255.255",
        "223.255.255.255",
        "2606:4700:4700::1111",
        "2001:db8::1",
        "::ffff:8.8.8.8",
        "64:ff9b::8.8.8.8",
        "2002:808:808::1",
        "64:ff9b:1::808:808",
    ];

    #[test]
    fn always_refused_addresses_are_refused_under_both_settings() {
        for (a, k) in ALWAYS_REFUSED {
            assert_eq!(kind(a), k, "{a}");
            for p in [ALLOW, DENY] {
                let e = p.check_ip(ip(a)).unwrap_err();
                assert_eq!(e, Refusal::Address { ip: ip(a), kind: k });
                assert!(e.to_string().contains("always refuses"), "{e}");
            }
        }
    }

    #[test]
    fn loopback_and_private_ranges_follow_the_setting() {
        for (a, k) in PRIVATE {
            assert_eq!(kind(a), k, "{a}");
            assert_eq!(ALLOW.check_ip(ip(a)), Ok(()), "{a}");
            let e = DENY.check_ip(ip(a)).unwrap_err();
            assert!(e.to_string().contains("BERTH_REMOTE_PRIVATE_NETWORKS=deny"), "{e}");
        }
    }

    #[test]
    fn public_addresses_are_allowed_under_both_settings() {
        for a in PUBLIC {
            assert_eq!(kind(a), AddressKind::Public, "{a}");
            assert_eq!(ALLOW.check_ip(ip(a)), Ok(()));
            assert_eq!(DENY.check_ip(ip(a)), Ok(()));
        }
    }

    #[test]
    fn messages_name_the_address_and_what_it_carries() {
        let e = ALLOW.check_ip(ip("::ffff:169.254.169.254")).unwrap_err().to_string();
        assert_eq!(
            e,
            "::ffff:169.254.169.254 (it carries the IPv4 address 169.254.169.254) is a cloud metadata \
             service address, which the remote URL policy always refuses"
        );
        let e = DENY.check_ip(ip("10.0.0.1")).unwrap_err().to_string();
        assert_eq!(
            e,
            "10.0.0.1 is a private network address, which the remote URL policy refuses with \
             BERTH_REMOTE_PRIVATE_NETWORKS=deny"
        );
    }

    #[test]
    fn urls_are_read_as_the_whatwg_parser_reads_them() {
        // the parser turns these spellings into 127.0.0.1
        for u in [
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0x7f000001/",
            "http://017700000001/",
            "http://127.1/",
            "http://127.0.0.1:22",
            "HTTP://LOCALHOST:5000",
            "http://localhost./",
            "http://registry.localhost/",
            "http://[::1]:5000/",
            "http://[::ffff:7f00:1]/",
        ] {
            assert!(ALLOW.check_url(u).is_ok(), "{u}");
            assert!(DENY.check_url(u).is_err(), "{u}");
        }
        let e = DENY.check_url("http://2130706433/").unwrap_err();
        assert_eq!(
            e,
            Refusal::Address {
                ip: ip("127.0.0.1"),
                kind: AddressKind::Loopback
            }
        );
        // and these into refused addresses, whatever the setting
        for (u, a) in [
            ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
            ("http://2852039166/", "169.254.169.254"),
            ("http://0xa9.0xfe.0xa9.0xfe/", "169.254.169.254"),
            ("http://0251.0376.0251.0376/", "169.254.169.254"),
            ("http://169.254.43518/", "169.254.169.254"),
            ("http://[fd00:ec2::254]/", "fd00:ec2::254"),
            ("http://[::ffff:169.254.169.254]/", "::ffff:a9fe:a9fe"),
            ("http://0.0.0.0/", "0.0.0.0"),
            ("http://0/", "0.0.0.0"),
            ("https://[::]:443/", "::"),
            ("http://100.100.100.200/", "100.100.100.200"),
            ("http://192.0.0.192/", "192.0.0.192"),
            ("http://[fe80::1]/", "fe80::1"),
            ("http://224.0.0.1/", "224.0.0.1"),
            ("http://255.255.255.255/", "255.255.255.255"),
        ] {
            for p in [ALLOW, DENY] {
                match p.check_url(u) {
                    Err(Refusal::Address { ip: got, .. }) => assert_eq!(got, ip(a), "{u}"),
                    other => panic!("{u}: {other:?}"),
                }
            }
        }
        // the metadata services' names, whatever the setting
        for u in ["http://metadata.google.internal/", "http://Instance-Data./"] {
            assert!(matches!(
                ALLOW.check_url(u),
                Err(Refusal::Name {
                    kind: AddressKind::Metadata,
                    ..
                })
            ));
        }
    }

    #[test]
    fn urls_need_http_and_a_host() {
        for p in [ALLOW, DENY] {
            assert!(matches!(
                p.check_url("ftp://registry.example/"),
                Err(Refusal::Scheme(_))
            ));
            assert!(matches!(p.check_url("file:///etc/passwd"), Err(Refusal::Scheme(_))));
            assert!(matches!(p.check_url("gopher://127.0.0.1/"), Err(Refusal::Scheme(_))));
            assert!(matches!(p.check_url("not a url"), Err(Refusal::Invalid(_))));
            assert!(matches!(p.check_url("http://"), Err(Refusal::Invalid(_))));
            assert!(p.check_url("https://registry-1.docker.io").is_ok());
            assert!(p.check_url("http://8.8.8.8:5000/").is_ok());
            // names are not resolved when a remote is saved
            assert!(p.check_url("http://registry.internal.example:5000").is_ok());
        }
        assert_eq!(ALLOW.check_url("http://10.0.0.5:5000").unwrap().port(), Some(5000));
    }

    #[test]
    fn requests_check_literals_and_leave_names_to_the_resolver() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(DENY.check_request(&u("http://localhost:5000/v2/")).is_ok());
        assert!(DENY.check_request(&u("http://127.0.0.1:5000/v2/")).is_err());
        assert!(ALLOW.check_request(&u("http://127.0.0.1:5000/v2/")).is_ok());
        assert!(ALLOW.check_request(&u("http://169.254.169.254/")).is_err());
        assert!(ALLOW.check_request(&u("http://[::ffff:a9fe:a9fe]/")).is_err());
        assert!(ALLOW.check_request(&u("ftp://8.8.8.8/")).is_err());
    }

    #[test]
    fn the_setting_parses() {
        assert_eq!(PrivateNetworks::parse("allow"), Some(PrivateNetworks::Allow));
        assert_eq!(PrivateNetworks::parse(" DENY "), Some(PrivateNetworks::Deny));
        assert_eq!(PrivateNetworks::parse("off"), None);
        assert_eq!(PrivateNetworks::default(), PrivateNetworks::Allow);
        assert_eq!(UrlPolicy::default(), ALLOW);
        assert_eq!(DENY.to_string(), "private networks deny");
    }
}
