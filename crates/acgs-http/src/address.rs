//! Which IP addresses acgs may connect to.
//!
//! One function, [`is_allowed`], decides for both resolved names (inside the connector's resolver)
//! and IP literals in URLs. Denied: private (RFC 1918), unique-local, link-local, CGNAT,
//! multicast, unspecified, broadcast, reserved and documentation ranges, `0.0.0.0/8`, benchmark
//! and IETF protocol ranges, SRv6 SIDs, the deprecated site-local and 6to4/Teredo/NAT64 forms that
//! embed a denied IPv4 address, and loopback unless explicitly allowed. The ranges are tables of
//! `ipnet` networks, read beside IANA's special-purpose registries.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// IPv4 ranges never connected to (IANA's special-purpose registry, RFC 6890 and successors);
/// loopback is decided apart.
const V4_DENIED: [Ipv4Net; 14] = [
    v4(0, 0, 0, 0, 8),       // "this network"
    v4(10, 0, 0, 0, 8),      // private
    v4(100, 64, 0, 0, 10),   // CGNAT
    v4(169, 254, 0, 0, 16),  // link-local
    v4(172, 16, 0, 0, 12),   // private
    v4(192, 0, 0, 0, 24),    // IETF protocol assignments
    v4(192, 0, 2, 0, 24),    // TEST-NET-1
    v4(192, 88, 99, 0, 24),  // 6to4 relay anycast
    v4(192, 168, 0, 0, 16),  // private
    v4(198, 18, 0, 0, 15),   // benchmarking
    v4(198, 51, 100, 0, 24), // TEST-NET-2
    v4(203, 0, 113, 0, 24),  // TEST-NET-3
    v4(224, 0, 0, 0, 4),     // multicast
    v4(240, 0, 0, 0, 4),     // reserved, and the broadcast address
];

/// IPv6 ranges never connected to; forms that embed an IPv4 address are judged by it first.
const V6_DENIED: [Ipv6Net; 11] = [
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),       // unique local
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),      // link-local
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),      // site-local (deprecated)
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),       // multicast
    v6([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32), // documentation
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),      // documentation
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), // IETF protocol assignments (Teredo, benchmarking …)
    v6([0x0064, 0xff9b, 1, 0, 0, 0, 0, 0], 48), // local-use NAT64
    v6([0x0100, 0, 0, 0, 0, 0, 0, 0], 64), // discard-only
    v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16), // SRv6 SIDs
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128),     // unspecified
];

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(s: [u16; 8], prefix: u8) -> Ipv6Net {
    Ipv6Net::new_assert(
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        prefix,
    )
}

/// Whether a connection to `ip` is allowed. `allow_loopback` admits `127.0.0.0/8` and `::1`.
#[must_use]
pub fn is_allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_allowed(v4, allow_loopback),
        IpAddr::V6(v6) => v6_allowed(v6, allow_loopback),
    }
}

fn v4_allowed(ip: Ipv4Addr, allow_loopback: bool) -> bool {
    if ip.is_loopback() {
        return allow_loopback;
    }
    !V4_DENIED.iter().any(|net| net.contains(&ip))
}

fn v6_allowed(ip: Ipv6Addr, allow_loopback: bool) -> bool {
    if ip == Ipv6Addr::LOCALHOST {
        return allow_loopback;
    }
    let s = ip.segments();
    // Forms that embed an IPv4 address: judge the embedded address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_allowed(v4, allow_loopback);
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        // NAT64 well-known prefix 64:ff9b::/96
        return v4_allowed(embedded_v4(s[6], s[7]), allow_loopback);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_unspecified() {
        // deprecated IPv4-compatible ::a.b.c.d
        return v4_allowed(embedded_v4(s[6], s[7]), allow_loopback);
    }
    if s[0] == 0x2002 {
        // 6to4 2002:AABB:CCDD::/48
        return v4_allowed(embedded_v4(s[1], s[2]), false);
    }
    !V6_DENIED.iter().any(|net| net.contains(&ip))
}

fn embedded_v4(high: u16, low: u16) -> Ipv4Addr {
    let [a, b] = high.to_be_bytes();
    let [c, d] = low.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(text: &str, loopback: bool) -> bool {
        is_allowed(text.parse().expect("ip"), loopback)
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "8.8.8.8",
            "142.250.74.46",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
        ] {
            assert!(allowed(ip, false), "{ip}");
        }
    }

    #[test]
    fn internal_and_special_ranges_are_denied() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "::10.0.0.1",
            "2002:c0a8:0101::1",
            "2001:0:4136:e378::1",
            "100::1",
            "2001:2::1",
            "2001:1ff:ffff::1",
            "5f00::1",
            "3fff:fff::1",
        ] {
            assert!(!allowed(ip, true), "{ip} must be denied");
        }
    }

    #[test]
    fn loopback_only_when_allowed() {
        for ip in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert!(!allowed(ip, false), "{ip}");
            assert!(allowed(ip, true), "{ip}");
        }
        assert!(
            !allowed("2002:7f00:0001::1", true),
            "6to4 loopback is never allowed"
        );
    }

    #[test]
    fn edges_of_ranges() {
        assert!(allowed("2001:200::1", false), "just above 2001::/23");
        assert!(allowed("5eff:ffff::1", false) && allowed("4000::1", false));
        assert!(allowed("100.63.255.255", false));
        assert!(allowed("100.128.0.0", false));
        assert!(allowed("172.15.255.255", false));
        assert!(allowed("172.32.0.0", false));
        assert!(allowed("223.255.255.255", false));
        assert!(
            allowed("64:ff9b::808:808", false),
            "NAT64 of a public address"
        );
    }
}
