//! Which addresses an `http` source may connect to. Sources fetch URLs that tenants choose, from
//! inside our network: without a guard, a URL could read the instance-metadata service (and its
//! credentials) or services that only listen on private addresses.
//!
//! A host is resolved here, every address it resolves to is classified, and the request then
//! connects only to those vetted addresses (see `http.rs`), so a DNS answer that changes between
//! the check and the connection (rebinding) cannot lead anywhere else.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::SourceError;

/// What an address is, as far as reaching it from a source goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Public,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, fc00::/7 (unique local), fec0::/10 (deprecated site-local),
    /// 64:ff9b:1::/48 (local-use NAT64).
    Private,
    /// 100.64.0.0/10, carrier-grade NAT: private to a provider's network.
    Shared,
    /// 169.254.0.0/16, fe80::/10: on-link services, the metadata services among them.
    LinkLocal,
    /// Cloud instance-metadata and platform endpoints, some of which sit in otherwise private ranges
    /// (AWS's fd00:ec2::/32, Alibaba's 100.100.100.200).
    Metadata,
    /// 0.0.0.0/8 and ::, which Linux connects to the host itself.
    Unspecified,
    Multicast,
    Broadcast,
    /// Documentation, benchmarking, IETF protocol and future-use ranges: nothing a source reads
    /// lives there.
    Reserved,
}

/// Metadata endpoints inside ranges that would otherwise be allowed or merely private. The
/// link-local ones (169.254.169.254 on AWS, GCP, Azure; 169.254.170.2 for ECS tasks) are named
/// too, so that a message says what they are.
const METADATA_V4: [Ipv4Addr; 5] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(169, 254, 170, 23),
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(192, 0, 0, 192),
];

impl Range {
    pub fn of(ip: IpAddr) -> Range {
        match ip {
            IpAddr::V4(v4) => Self::of_v4(v4),
            IpAddr::V6(v6) => Self::of_v6(v6),
        }
    }

    fn of_v4(ip: Ipv4Addr) -> Range {
        let [a, b, c, _] = ip.octets();
        if METADATA_V4.contains(&ip) {
            Range::Metadata
        } else if a == 0 {
            Range::Unspecified
        } else if ip.is_broadcast() {
            Range::Broadcast
        } else if ip.is_loopback() {
            Range::Loopback
        } else if ip.is_link_local() {
            Range::LinkLocal
        } else if ip.is_multicast() {
            Range::Multicast
        } else if ip.is_private() {
            Range::Private
        } else if a == 100 && (b & 0xc0) == 64 {
            Range::Shared
        } else if a >= 240
            || (a, b, c) == (192, 0, 0)
            || (a, b, c) == (192, 0, 2)
            || (a, b, c) == (198, 51, 100)
            || (a, b, c) == (203, 0, 113)
            || (a == 198 && (b & 0xfe) == 18)
        {
            Range::Reserved
        } else {
            Range::Public
        }
    }

    fn of_v6(ip: Ipv6Addr) -> Range {
        // An address that carries an IPv4 one reaches (or may reach, through a translator) that
        // address: it is judged as that address.
        if let Some(v4) = embedded_v4(ip) {
            return Self::of_v4(v4);
        }
        let s = ip.segments();
        if ip.is_unspecified() {
            Range::Unspecified
        } else if ip.is_loopback() {
            Range::Loopback
        } else if s[0] == 0xfd00 && s[1] == 0x0ec2 {
            Range::Metadata
        } else if (s[0] & 0xffc0) == 0xfe80 {
            Range::LinkLocal
        } else if (s[0] & 0xff00) == 0xff00 {
            Range::Multicast
        } else if (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfec0 || (s[0], s[1], s[2]) == (0x64, 0xff9b, 1) {
            Range::Private
        } else if (s[0], s[1]) == (0x2001, 0x0db8) || s[..4] == [0x0100, 0, 0, 0] {
            Range::Reserved
        } else {
            Range::Public
        }
    }

    /// Whether a source may connect to an address of this range.
    pub fn allowed(self, allow_private: bool) -> bool {
        match self {
            Range::Public => true,
            Range::Loopback | Range::Private | Range::Shared => allow_private,
            Range::LinkLocal | Range::Metadata | Range::Unspecified | Range::Multicast | Range::Broadcast | Range::Reserved => false,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Range::Public => "a public address",
            Range::Loopback => "a loopback address",
            Range::Private => "a private address",
            Range::Shared => "a shared (carrier-grade NAT) address",
            Range::LinkLocal => "a link-local address",
            Range::Metadata => "an instance-metadata address",
            Range::Unspecified => "an unspecified address",
            Range::Multicast => "a multicast address",
            Range::Broadcast => "a broadcast address",
            Range::Reserved => "a reserved address",
        }
    }
}

/// The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d, deprecated
/// but still parsed), NAT64 (64:ff9b::a.b.c.d) or 6to4 (2002:aabb:ccdd::) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0; 6] && !ip.is_unspecified() && !ip.is_loopback() {
        return Some(low(s[6], s[7]));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(low(s[1], s[2]));
    }
    None
}

/// The addresses `host` may be reached at on `port`, every one of them allowed; an IP literal is
/// judged without a lookup. `within` bounds the lookup.
pub(super) async fn vet(host: &str, port: u16, allow_private: bool, within: Duration) -> Result<Vec<SocketAddr>, SourceError> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let literal = bare.parse::<IpAddr>().ok();
    let addrs: Vec<SocketAddr> = match literal {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => tokio::time::timeout(within, tokio::net::lookup_host((bare, port)))
            .await
            .map_err(|_| SourceError::Failed(format!("looking up {bare} timed out")))?
            .map_err(|e| SourceError::Failed(format!("could not look up {bare}: {e}")))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(SourceError::Failed(format!("{bare} has no address")));
    }
    for addr in &addrs {
        let range = Range::of(addr.ip());
        if !range.allowed(allow_private) {
            return Err(SourceError::Blocked(blocked(bare, literal.is_some(), addr.ip(), range)));
        }
    }
    Ok(addrs)
}

fn blocked(host: &str, literal: bool, ip: IpAddr, range: Range) -> String {
    let what = if literal { format!("{ip} is {}", range.name()) } else { format!("{host} resolves to {ip}, {}", range.name()) };
    if range.allowed(true) {
        format!("{what}; this deployment does not let sources connect to loopback, private or shared addresses")
    } else {
        format!("{what}; sources never connect to link-local, metadata, unspecified, multicast, broadcast or reserved addresses")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(ip: &str) -> Range {
        Range::of(ip.parse().unwrap())
    }

    fn all(ips: &[&str], expected: Range) {
        for ip in ips {
            assert_eq!(range(ip), expected, "{ip}");
        }
    }

    #[test]
    fn public_addresses_are_public() {
        all(
            &[
                "1.1.1.1",
                "8.8.8.8",
                "52.95.110.1",
                "100.63.255.255",
                "100.128.0.0",
                "169.253.255.255",
                "169.255.0.1",
                "172.15.255.255",
                "172.32.0.0",
                "192.167.1.1",
                "192.169.0.1",
                "198.17.0.1",
                "198.20.0.1",
                "223.255.255.255",
                "2606:4700:4700::1111",
                "2a05:d018::1",
                "::ffff:8.8.8.8",
                "64:ff9b::808:808",
                "2002:808:808::1",
            ],
            Range::Public,
        );
    }

    #[test]
    fn loopback_private_and_shared_ranges() {
        all(&["127.0.0.1", "127.255.255.254", "::1", "::ffff:127.0.0.1", "::127.0.0.1"], Range::Loopback);
        all(
            &[
                "10.0.0.1",
                "10.255.255.255",
                "172.16.0.1",
                "172.31.255.255",
                "192.168.0.1",
                "192.168.255.255",
                "fc00::1",
                "fd12:3456::1",
                "fec0::1",
                "64:ff9b:1::1",
                "::ffff:10.1.2.3",
                "::ffff:192.168.1.1",
                "64:ff9b::a00:1",
                "2002:c0a8:101::1",
            ],
            Range::Private,
        );
        all(&["100.64.0.0", "100.127.255.255", "100.100.1.1", "::ffff:100.64.0.1"], Range::Shared);
    }

    #[test]
    fn link_local_and_metadata_ranges() {
        all(&["169.254.0.1", "169.254.255.255", "169.254.169.253", "fe80::1", "febf:ffff::1", "::ffff:169.254.1.1"], Range::LinkLocal);
        all(
            &[
                "169.254.169.254",
                "169.254.170.2",
                "100.100.100.200",
                "192.0.0.192",
                "fd00:ec2::254",
                "fd00:ec2::23",
                "::ffff:169.254.169.254",
                "::ffff:a9fe:a9fe",
                "::169.254.169.254",
                "64:ff9b::a9fe:a9fe",
                "2002:a9fe:a9fe::",
            ],
            Range::Metadata,
        );
    }

    #[test]
    fn unspecified_multicast_broadcast_and_reserved_ranges() {
        all(&["0.0.0.0", "0.1.2.3", "::", "::ffff:0.0.0.0"], Range::Unspecified);
        all(&["224.0.0.1", "239.255.255.255", "ff02::1", "ff05::2", "::ffff:224.0.0.251"], Range::Multicast);
        all(&["255.255.255.255", "::ffff:255.255.255.255"], Range::Broadcast);
        all(
            &["240.0.0.1", "254.255.255.255", "192.0.0.8", "192.0.2.1", "198.51.100.7", "203.0.113.9", "198.18.0.1", "198.19.255.255"],
            Range::Reserved,
        );
        all(&["2001:db8::1", "100::1"], Range::Reserved);
    }

    #[test]
    fn private_ranges_need_permission_and_the_rest_is_never_allowed() {
        assert!(Range::Public.allowed(false));
        for r in [Range::Loopback, Range::Private, Range::Shared] {
            assert!(!r.allowed(false), "{r:?}");
            assert!(r.allowed(true), "{r:?}");
        }
        for r in [Range::LinkLocal, Range::Metadata, Range::Unspecified, Range::Multicast, Range::Broadcast, Range::Reserved] {
            assert!(!r.allowed(true), "{r:?}");
        }
    }

    #[tokio::test]
    async fn literals_are_judged_without_a_lookup() {
        let second = Duration::from_secs(1);
        assert_eq!(vet("8.8.8.8", 443, false, second).await.unwrap(), ["8.8.8.8:443".parse().unwrap()]);
        assert_eq!(vet("[2606:4700::1]", 80, false, second).await.unwrap(), ["[2606:4700::1]:80".parse().unwrap()]);
        assert_eq!(vet("127.0.0.1", 8080, true, second).await.unwrap(), ["127.0.0.1:8080".parse().unwrap()]);

        let Err(SourceError::Blocked(message)) = vet("127.0.0.1", 80, false, second).await else { panic!("loopback allowed") };
        assert_eq!(
            message,
            "127.0.0.1 is a loopback address; this deployment does not let sources connect to loopback, private or shared addresses"
        );
        let Err(SourceError::Blocked(message)) = vet("169.254.169.254", 80, true, second).await else { panic!("metadata allowed") };
        assert!(message.starts_with("169.254.169.254 is an instance-metadata address; sources never connect"), "{message}");
        assert!(matches!(vet("[::ffff:169.254.169.254]", 80, true, second).await, Err(SourceError::Blocked(_))));
        assert!(matches!(vet("[fd00:ec2::254]", 80, true, second).await, Err(SourceError::Blocked(_))));
    }

    #[tokio::test]
    async fn names_are_judged_by_every_address_they_resolve_to() {
        // `localhost` resolves locally (no network needed) to loopback addresses only.
        let Err(SourceError::Blocked(message)) = vet("localhost", 80, false, Duration::from_secs(5)).await else { panic!("allowed") };
        assert!(message.starts_with("localhost resolves to "), "{message}");
        let addrs = vet("localhost", 80, true, Duration::from_secs(5)).await.unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80), "{addrs:?}");
    }
}
