//! Which URLs an agent may register: http(s) only, and nothing that points into the
//! control plane's own networks (the SSRF rules of registration).

use std::net::IpAddr;

/// The register URL rules: http(s) only, and no IP literal in a reserved, link-local,
/// documentation or private range (see [`refused_ip`]; an IPv6 address that embeds an
/// IPv4 one is judged by that). `localhost` is allowed by name; other names are checked by
/// the addresses they resolve to.
pub async fn check_agent_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("url: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("url: only http and https are allowed".to_owned());
    }
    let host = parsed.host().ok_or("url: a host is required")?;
    let addresses: Vec<IpAddr> = match host {
        url::Host::Ipv4(ip) => vec![IpAddr::V4(ip)],
        url::Host::Ipv6(ip) => vec![IpAddr::V6(ip)],
        url::Host::Domain(name) if name.eq_ignore_ascii_case("localhost") => return Ok(()),
        url::Host::Domain(name) => {
            let port = parsed.port_or_known_default().unwrap_or(80);
            let resolved = tokio::net::lookup_host((name, port))
                .await
                .map_err(|e| format!("url: {name} does not resolve: {e}"))?;
            resolved.map(|a| a.ip()).collect()
        }
    };
    if addresses.is_empty() {
        return Err("url: the host resolves to no address".to_owned());
    }
    for ip in addresses {
        if refused_ip(ip) {
            let behind = match ip {
                IpAddr::V6(v6) => match embedded_ipv4(v6) {
                    Embedded::V4(v4) => format!(" (it leads to {v4})"),
                    Embedded::Unknown => {
                        " (it leads to an IPv4 address it does not say)".to_owned()
                    }
                    Embedded::None => String::new(),
                },
                IpAddr::V4(_) => String::new(),
            };
            return Err(format!(
                "url: address {ip}{behind} is not allowed for an agent"
            ));
        }
    }
    Ok(())
}

/// Whether an agent may not be at `ip`: loopback, link-local, private, shared (CGNAT),
/// documentation, multicast, `0.0.0.0/8` and the reserved `240.0.0.0/4`; for IPv6 the same
/// kinds, and an address that embeds an IPv4 one is judged by the IPv4 address it leads
/// to (see [`embedded_ipv4`]).
fn refused_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            let [a, b, c, _] = ip.octets();
            ip.is_loopback()
                || ip.is_link_local()
                || ip.is_private()
                || ip.is_unspecified()
                || ip.is_multicast()
                || ip.is_broadcast()
                || a == 0
                || (a, b, c) == (192, 0, 2)
                || (a, b, c) == (198, 51, 100)
                || (a, b, c) == (203, 0, 113)
                || (a == 100 && (64..128).contains(&b))
                || a >= 240
        }
        IpAddr::V6(ip) => match embedded_ipv4(ip) {
            Embedded::V4(v4) => refused_ip(IpAddr::V4(v4)),
            Embedded::Unknown => true,
            Embedded::None => {
                let [first, second, ..] = ip.segments();
                ip.is_loopback()
                    || ip.is_unspecified()
                    || ip.is_multicast()
                    || (first & 0xffc0) == 0xfe80
                    // Site-local (deprecated, still routed inside some networks).
                    || (first & 0xffc0) == 0xfec0
                    || (first & 0xfe00) == 0xfc00
                    || (first == 0x2001 && second == 0x0db8)
                    // The newer documentation prefix, 3fff::/20.
                    || (first == 0x3fff && (second & 0xf000) == 0)
            }
        },
    }
}

/// What an IPv6 address says about an IPv4 address behind it.
#[derive(Debug, PartialEq, Eq)]
enum Embedded {
    /// An ordinary IPv6 address.
    None,
    /// It leads to this IPv4 address.
    V4(std::net::Ipv4Addr),
    /// It leads to an IPv4 address that cannot be told from the address alone.
    Unknown,
}

/// The IPv4 address an IPv6 address leads to, by its prefix: IPv4-mapped (`::ffff:0:0/96`),
/// IPv4-translated (`::ffff:0:0:0/96`), IPv4-compatible (`::/96`, deprecated but still the
/// IPv4 host where a stack tunnels it; `::` and `::1` fall here too and are refused as
/// `0.0.0.0/8`), NAT64 (`64:ff9b::/96`, RFC 6052), 6to4 (`2002::/16`, the address in bits
/// 16..48) and Teredo (`2001::/32`, the client's address inverted in the last 32 bits).
/// The rest of `64:ff9b::/32` (the local-use `64:ff9b:1::/48` of RFC 8215 among it) puts
/// the IPv4 address where its operator's prefix length says, which the address does not.
fn embedded_ipv4(ip: std::net::Ipv6Addr) -> Embedded {
    use std::net::Ipv4Addr;
    let o = ip.octets();
    let last = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match ip.segments() {
        [0, 0, 0, 0, 0, 0xffff | 0, _, _]
        | [0, 0, 0, 0, 0xffff, 0, _, _]
        | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Embedded::V4(last),
        [0x64, 0xff9b, ..] => Embedded::Unknown,
        [0x2002, ..] => Embedded::V4(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        [0x2001, 0, ..] => Embedded::V4(!last),
        _ => Embedded::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_urls_follow_the_register_rules() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for ok in [
            "http://localhost:8000",
            "https://93.184.215.14/a2a",
            "http://[2606:4700::1111]:80",
        ] {
            assert_eq!(rt.block_on(check_agent_url(ok)), Ok(()), "{ok}");
        }
        for bad in [
            "ftp://example.com",
            "http://127.0.0.1:9",
            "http://10.0.0.1",
            "http://172.16.5.4",
            "http://192.168.1.1",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1",
            "http://192.0.2.1",
            "http://198.51.100.7",
            "http://203.0.113.9",
            "http://224.0.0.1",
            "http://[::1]",
            "http://[fe80::1]",
            "http://[fd00::1]",
            "http://[2001:db8::1]",
            "http://[::ffff:127.0.0.1]",
            "http://0.1.2.3",
            "not a url",
        ] {
            assert!(rt.block_on(check_agent_url(bad)).is_err(), "{bad}");
        }
    }

    /// Every IPv6 form that embeds an IPv4 address is judged by that address: refused
    /// when it leads to loopback, metadata or a private network, allowed when public.
    #[test]
    fn ipv6_addresses_that_embed_ipv4_are_judged_by_it() {
        let judged = |text: &str| refused_ip(text.parse::<IpAddr>().unwrap());
        for (form, refused, allowed) in [
            // IPv4-compatible, ::a.b.c.d.
            ("compatible", "::127.0.0.1", "::93.184.215.14"),
            ("compatible", "::169.254.169.254", "::8.8.8.8"),
            ("compatible", "::10.0.0.1", "::1.1.1.1"),
            // IPv4-mapped, ::ffff:a.b.c.d, in either spelling.
            ("mapped", "::ffff:7f00:1", "::ffff:5db8:d70e"),
            ("mapped", "::ffff:192.168.1.1", "::ffff:93.184.215.14"),
            // IPv4-translated, ::ffff:0:a.b.c.d.
            ("translated", "::ffff:0:127.0.0.1", "::ffff:0:93.184.215.14"),
            // NAT64, 64:ff9b::/96.
            ("nat64", "64:ff9b::127.0.0.1", "64:ff9b::93.184.215.14"),
            ("nat64", "64:ff9b::a9fe:a9fe", "64:ff9b::808:808"),
            ("nat64", "64:ff9b::192.168.0.1", "64:ff9b::1.1.1.1"),
            // 6to4, 2002:AABB:CCDD::/48 for AA.BB.CC.DD.
            ("6to4", "2002:7f00:1::", "2002:5db8:d70e::1"),
            ("6to4", "2002:a9fe:a9fe::1", "2002:808:808::"),
            ("6to4", "2002:c0a8:101:1::5", "2002:101:101::"),
            // Teredo, 2001:0::/32 with the client inverted in the last 32 bits.
            (
                "teredo",
                "2001:0:4136:e378:8000:63bf:80ff:fffe",
                "2001:0:4136:e378:8000:63bf:a247:28f1",
            ),
        ] {
            assert!(judged(refused), "{form}: {refused} must be refused");
            assert!(!judged(allowed), "{form}: {allowed} must be allowed");
        }
        // What sits at `::`/`::1` in the compatible range is refused too.
        for also in ["::", "::1", "::0.0.0.2"] {
            assert!(judged(also), "{also}");
        }
        // Local-use NAT64 (RFC 8215) puts the IPv4 address where its prefix length says,
        // which the address does not: refused whatever it holds.
        for unknown in [
            "64:ff9b:1::5db8:d70e",
            "64:ff9b:1:5db8:d70e::",
            "64:ff9b:ffff::1",
        ] {
            assert_eq!(
                embedded_ipv4(unknown.parse().unwrap()),
                Embedded::Unknown,
                "{unknown}"
            );
            assert!(judged(unknown), "{unknown}");
        }
        // Other IPv6 addresses are their own.
        assert_eq!(
            embedded_ipv4("2606:4700::1111".parse().unwrap()),
            Embedded::None
        );
        for refused in ["fec0::1", "3fff::1", "3fff:fff::1"] {
            assert!(judged(refused), "{refused}");
        }
        assert!(!judged("3fff:1000::1"), "outside 3fff::/20");
        // The refusal names the IPv4 address behind.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let refusal = rt
            .block_on(check_agent_url("http://[2002:a9fe:a9fe::1]/"))
            .unwrap_err();
        assert!(refusal.contains("169.254.169.254"), "{refusal}");
    }
}
