//! Which IP addresses acgs may connect to.
//!
//! One function, [`is_allowed`], decides for both resolved names (inside the connector's resolver)
//! and IP literals in URLs. Denied: private (RFC 1918), unique-local, link-local, CGNAT,
//! multicast, unspecified, broadcast, reserved and documentation ranges, `0.0.0.0/8`, benchmark
//! and IETF protocol ranges, the deprecated site-local and 6to4/Teredo/NAT64 forms that embed a
//! denied IPv4 address, and loopback unless explicitly allowed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether a connection to `ip` is allowed. `allow_loopback` admits `127.0.0.0/8` and `::1`.
#[must_use]
pub fn is_allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_allowed(v4, allow_loopback),
        IpAddr::V6(v6) => v6_allowed(v6, allow_loopback),
    }
}

fn v4_allowed(ip: Ipv4Addr, allow_loopback: bool) -> bool {
    let [a, b, c, _] = ip.octets();
    if a == 127 {
        return allow_loopback;
    }
    let denied = a == 0                                   // 0.0.0.0/8 "this network"
        || a == 10                                        // private
        || (a == 100 && (64..=127).contains(&b))          // CGNAT 100.64/10
        || (a == 169 && b == 254)                         // link-local
        || (a == 172 && (16..=31).contains(&b))           // private
        || (a == 192 && b == 0 && c == 0)                 // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)                 // TEST-NET-1
        || (a == 192 && b == 88 && c == 99)               // 6to4 relay anycast
        || (a == 192 && b == 168)                         // private
        || (a == 198 && (18..=19).contains(&b))           // benchmarking
        || (a == 198 && b == 51 && c == 100)              // TEST-NET-2
        || (a == 203 && b == 0 && c == 113)               // TEST-NET-3
        || a >= 224; // multicast 224/4, reserved 240/4, broadcast
    !denied
}

fn v6_allowed(ip: Ipv6Addr, allow_loopback: bool) -> bool {
    if ip == Ipv6Addr::LOCALHOST {
        return allow_loopback;
    }
    if ip.is_unspecified() {
        return false;
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
    if s[..6] == [0, 0, 0, 0, 0, 0] {
        // deprecated IPv4-compatible ::a.b.c.d
        return v4_allowed(embedded_v4(s[6], s[7]), allow_loopback);
    }
    if s[0] == 0x2002 {
        // 6to4 2002:AABB:CCDD::/48
        return v4_allowed(embedded_v4(s[1], s[2]), false);
    }
    let denied = (s[0] & 0xfe00) == 0xfc00              // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80                    // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0                    // site-local (deprecated) fec0::/10
        || (s[0] & 0xff00) == 0xff00                    // multicast ff00::/8
        || (s[0] == 0x2001 && s[1] == 0x0db8)           // documentation 2001:db8::/32
        || (s[0] == 0x3fff && s[1] <= 0x0fff)           // documentation 3fff::/20
        || (s[0] == 0x2001 && s[1] == 0)                // Teredo 2001::/32 (embeds obfuscated v4)
        || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64 64:ff9b:1::/48
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]); // discard-only 100::/64
    !denied
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
