//! Where a client is: a longest-prefix-match table from client networks (IPv4 and IPv6 CIDRs) to
//! a value (the gslb stores a region index), which also tells the ECS scope of each answer.
//!
//! # Why hand-written
//!
//! Prefix-table crates (`prefix-trie`, `ip_network_table`, `treebitmap`) answer "which prefix
//! matches", but the answer's ECS scope (RFC 7871) needs more: the widest block around the
//! client in which every address gets the same answer. That is the depth at which the client's
//! path leaves the table's trie, which a binary trie exposes directly and the crates hide. The
//! trie is short (an arena of nodes, two children each) and tested against a naive linear scan.
//!
//! A lookup walks at most 32 (IPv4) or 128 (IPv6) nodes, and usually far fewer: the walk
//! stops where the table has nothing below.

use std::net::IpAddr;

/// Index of "no child" in a node (the root is never a child, so 0 is free).
const NONE: u32 = 0;

#[derive(Clone, Debug, Default)]
struct Node {
    children: [u32; 2],
    value: Option<u32>,
}

/// One address family's binary trie over left-aligned address bits.
#[derive(Clone, Debug)]
struct Trie {
    nodes: Vec<Node>,
    bits: u8,
}

impl Trie {
    fn new(bits: u8) -> Self {
        Trie {
            nodes: vec![Node::default()],
            bits,
        }
    }

    fn insert(&mut self, key: u128, prefix: u8, value: u32) {
        let mut at = 0usize;
        for depth in 0..prefix.min(self.bits) {
            let bit = bit_at(key, depth);
            let child = self.nodes[at].children[bit];
            at = if child == NONE {
                let next = self.nodes.len();
                self.nodes.push(Node::default());
                // The table is built from config: far fewer than 2^32 nodes.
                self.nodes[at].children[bit] = u32::try_from(next).unwrap_or(u32::MAX);
                next
            } else {
                child as usize
            };
        }
        self.nodes[at].value = Some(value);
    }

    /// The deepest value on `key`'s path with its prefix length, and the scope.
    fn lookup(&self, key: u128) -> (Option<(u32, u8)>, u8) {
        let mut at = 0usize;
        let mut best = None;
        let mut depth = 0u8;
        loop {
            let Some(node) = self.nodes.get(at) else {
                return (best, depth);
            };
            if let Some(v) = node.value {
                best = Some((v, depth));
            }
            if depth >= self.bits {
                return (best, depth);
            }
            let child = node.children[bit_at(key, depth)];
            if child == NONE {
                // A leaf: the whole block /depth answers alike. Otherwise the other half has
                // entries and only our half, /depth+1, is uniform.
                let leaf = node.children == [NONE, NONE];
                return (best, if leaf { depth } else { depth + 1 });
            }
            at = child as usize;
            depth += 1;
        }
    }
}

#[inline]
fn bit_at(key: u128, depth: u8) -> usize {
    ((key >> (127 - u32::from(depth))) & 1) as usize
}

/// An address as left-aligned bits, and the family's width.
#[inline]
fn key_of(addr: IpAddr) -> (u128, bool) {
    match addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)) << 96, true),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            // An IPv4 client seen through a dual-stack socket.
            Some(v4) => (u128::from(u32::from(v4)) << 96, true),
            None => (u128::from(a), false),
        },
    }
}

/// What a lookup found for one client address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Located<'a, T> {
    /// The value of the longest matching prefix, `None` when no prefix contains the address.
    pub value: Option<&'a T>,
    /// Length of the matched prefix (0 when none matched).
    pub matched_prefix: u8,
    /// The widest block around the address (as a prefix length) in which every address gets
    /// the same lookup result: the ECS scope of an answer that depends only on this lookup.
    /// At least `matched_prefix`.
    pub scope: u8,
}

/// A longest-prefix-match table over IPv4 and IPv6 networks.
#[derive(Clone, Debug)]
pub struct NetworkMap<T> {
    v4: Trie,
    v6: Trie,
    values: Vec<T>,
}

impl<T> Default for NetworkMap<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> NetworkMap<T> {
    /// An empty table.
    pub fn new() -> Self {
        NetworkMap {
            v4: Trie::new(32),
            v6: Trie::new(128),
            values: Vec::new(),
        }
    }

    /// Maps the network `addr/prefix` to `value` (bits past the prefix are ignored; a prefix
    /// longer than the family's is cut to it). Inserting the same network again replaces it.
    pub fn insert(&mut self, addr: IpAddr, prefix: u8, value: T) {
        let index = u32::try_from(self.values.len()).unwrap_or(u32::MAX);
        self.values.push(value);
        match addr {
            IpAddr::V4(a) => self
                .v4
                .insert(u128::from(u32::from(a)) << 96, prefix.min(32), index),
            IpAddr::V6(a) => self.v6.insert(u128::from(a), prefix.min(128), index),
        }
    }

    /// The longest prefix containing `addr` and the ECS scope of an answer based on it.
    /// IPv4-mapped IPv6 addresses are looked up as IPv4.
    pub fn lookup(&self, addr: IpAddr) -> Located<'_, T> {
        let (key, v4) = key_of(addr);
        let (best, scope) = if v4 {
            self.v4.lookup(key)
        } else {
            self.v6.lookup(key)
        };
        match best {
            Some((index, len)) => Located {
                value: self.values.get(index as usize),
                matched_prefix: len,
                scope,
            },
            None => Located {
                value: None,
                matched_prefix: 0,
                scope,
            },
        }
    }
}

/// `addr` with the bits past `prefix` cleared (the client's subnet).
pub fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let kept = if prefix == 0 {
                0
            } else {
                bits & (u32::MAX << (32 - u32::from(prefix.min(32))))
            };
            IpAddr::V4(kept.into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let kept = if prefix == 0 {
                0
            } else {
                bits & (u128::MAX << (128 - u32::from(prefix.min(128))))
            };
            IpAddr::V6(kept.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins_and_scope_is_the_uniform_block() {
        let mut m = NetworkMap::new();
        m.insert(v4("10.0.0.0"), 8, "us");
        m.insert(v4("10.1.0.0"), 16, "eu");
        m.insert(v4("192.0.2.0"), 24, "eu");
        let l = m.lookup(v4("10.1.2.3"));
        assert_eq!((l.value, l.matched_prefix, l.scope), (Some(&"eu"), 16, 16));
        // Inside 10/8 but next to 10.1/16: the uniform block is narrower than /8.
        let l = m.lookup(v4("10.0.2.3"));
        assert_eq!((l.value, l.matched_prefix), (Some(&"us"), 8));
        assert_eq!(l.scope, 16);
        let l = m.lookup(v4("10.128.0.1"));
        assert_eq!((l.value, l.scope), (Some(&"us"), 9));
        let l = m.lookup(v4("192.0.2.200"));
        assert_eq!((l.value, l.matched_prefix, l.scope), (Some(&"eu"), 24, 24));
        // Unmatched: the widest block that holds no network of the table.
        let l = m.lookup(v4("127.0.0.1"));
        assert_eq!((l.value, l.matched_prefix), (None, 0));
        assert_eq!(l.scope, 2); // 64.0.0.0/2 holds no entry, 0.0.0.0/1 does
        let l = m.lookup(v4("200.0.0.1"));
        assert_eq!(l.scope, 5); // 192.0.0.0/5 has 192.0.2.0/24; 200.0.0.0/5 is empty
                                // IPv6 and mapped IPv4.
        m.insert("2001:db8::".parse().unwrap(), 32, "v6");
        assert_eq!(m.lookup("2001:db8::1".parse().unwrap()).value, Some(&"v6"));
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        assert_eq!(m.lookup(mapped).value, Some(&"eu"));
        assert_eq!(m.lookup(IpAddr::V6(Ipv6Addr::LOCALHOST)).value, None);
    }

    #[test]
    fn empty_table_and_host_routes() {
        let mut m: NetworkMap<u8> = NetworkMap::new();
        assert_eq!(m.lookup(v4("1.2.3.4")).scope, 0);
        m.insert(v4("1.2.3.4"), 32, 1);
        let l = m.lookup(v4("1.2.3.4"));
        assert_eq!((l.value, l.matched_prefix, l.scope), (Some(&1), 32, 32));
        assert_eq!(m.lookup(v4("1.2.3.5")).scope, 32);
        m.insert(v4("0.0.0.0"), 0, 0);
        assert_eq!(m.lookup(v4("9.9.9.9")).value, Some(&0));
        assert_eq!(m.lookup(v4("9.9.9.9")).matched_prefix, 0);
    }

    #[test]
    fn mask_clears_host_bits() {
        assert_eq!(mask(v4("192.0.2.77"), 24), v4("192.0.2.0"));
        assert_eq!(mask(v4("192.0.2.77"), 0), v4("0.0.0.0"));
        assert_eq!(mask(v4("192.0.2.77"), 32), v4("192.0.2.77"));
        assert_eq!(
            mask("2001:db8:1:2::9".parse().unwrap(), 48),
            "2001:db8:1::".parse::<IpAddr>().unwrap()
        );
    }

    fn contains(net: u32, prefix: u8, addr: u32) -> bool {
        prefix == 0 || (net ^ addr) >> (32 - u32::from(prefix)) == 0
    }

    proptest! {
        /// The trie agrees with a linear scan, and every address of the scope block gets the
        /// same answer.
        #[test]
        fn agrees_with_a_linear_scan(
            nets in proptest::collection::vec((any::<u32>(), 0u8..=32), 0..40),
            addrs in proptest::collection::vec(any::<u32>(), 1..20),
            probes in proptest::collection::vec(any::<u32>(), 8),
        ) {
            let mut m = NetworkMap::new();
            let mut table: Vec<(u32, u8, usize)> = Vec::new();
            for (i, (net, prefix)) in nets.iter().enumerate() {
                let net = if *prefix == 0 { 0 } else { net & (u32::MAX << (32 - u32::from(*prefix))) };
                m.insert(IpAddr::V4(net.into()), *prefix, i);
                table.retain(|(n, p, _)| !(*n == net && p == prefix));
                table.push((net, *prefix, i));
            }
            let naive = |addr: u32| {
                table
                    .iter()
                    .filter(|(n, p, _)| contains(*n, *p, addr))
                    .max_by_key(|(_, p, _)| *p)
                    .map(|(_, p, i)| (*i, *p))
            };
            for addr in addrs {
                let l = m.lookup(IpAddr::V4(addr.into()));
                let expected = naive(addr);
                prop_assert_eq!(l.value.copied(), expected.map(|e| e.0));
                prop_assert_eq!(l.matched_prefix, expected.map_or(0, |e| e.1));
                prop_assert!(l.scope >= l.matched_prefix);
                // Any address in the client's /scope block gets the same answer.
                for probe in &probes {
                    let keep = if l.scope == 0 { 0 } else { u32::MAX << (32 - u32::from(l.scope)) };
                    let other = (addr & keep) | (probe & !keep);
                    prop_assert_eq!(naive(other).map(|e| e.0), expected.map(|e| e.0));
                }
            }
        }
    }
}
