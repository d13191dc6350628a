//! Free TCP ports on 127.0.0.1 for the servers the test bed starts as child processes.
//!
//! A port is chosen here, released, and bound later by another process (etcd, LiteLLM, the token
//! server, the operator's admin server). Two things could take it in between: a server that binds
//! port 0 (the emulator does), and the local end of an outgoing connection. Both get their port
//! from the kernel's ephemeral range, so ports are chosen below that range, at random, checked
//! free by binding them, and never handed out twice by one process. Where the ephemeral range
//! leaves no room below it, the kernel picks (port 0), as before.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::ops::Range;
use std::sync::Mutex;

use rand::Rng;

use crate::{Error, Result};

/// Lowest port handed out (well above the registered services most machines run).
const LOWEST: u16 = 20_000;
/// Fewest ports below the ephemeral range worth choosing from.
const MIN_BAND: u16 = 2_000;
/// Linux's default ephemeral range, when it cannot be read.
const DEFAULT_EPHEMERAL_LOW: u16 = 32_768;
/// Random candidates tried per port before giving up on the band.
const ATTEMPTS: usize = 200;

/// Every port this process has handed out.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// `count` distinct ports that are free now and outside the kernel's ephemeral range (so no
/// port-0 bind or outgoing connection takes one before the caller binds it), none handed out by
/// this process before.
pub fn free_loopback_ports(count: usize) -> Result<Vec<u16>> {
    let band = band_below(ephemeral_low());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    // Keep every chosen port bound until all are chosen, so they differ.
    let mut listeners = Vec::with_capacity(count);
    let mut ports = Vec::with_capacity(count);
    let mut rng = rand::rng();
    while ports.len() < count {
        let found = band.as_ref().and_then(|band| {
            (0..ATTEMPTS).find_map(|_| {
                let port = rng.random_range(band.clone());
                if handed_out.contains(&port) || ports.contains(&port) {
                    return None;
                }
                TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                    .ok()
                    .map(|l| (port, l))
            })
        });
        let (port, listener) = match found {
            Some(found) => found,
            None => {
                let listener =
                    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(Error::FreePort)?;
                (
                    listener.local_addr().map_err(Error::FreePort)?.port(),
                    listener,
                )
            }
        };
        ports.push(port);
        listeners.push(listener);
    }
    handed_out.extend(ports.iter().copied());
    Ok(ports)
}

/// The first port of the kernel's ephemeral range.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| parse_range_low(&text))
        .unwrap_or(DEFAULT_EPHEMERAL_LOW)
}

/// The low end of `ip_local_port_range` ("32768\t60999").
fn parse_range_low(text: &str) -> Option<u16> {
    text.split_whitespace().next()?.parse().ok()
}

/// The ports to choose from below the ephemeral range, if there is room.
fn band_below(ephemeral_low: u16) -> Option<Range<u16>> {
    (ephemeral_low >= LOWEST.saturating_add(MIN_BAND)).then_some(LOWEST..ephemeral_low)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_below_the_ephemeral_range_and_never_repeat() {
        let low = ephemeral_low();
        let first = free_loopback_ports(3).unwrap();
        let second = free_loopback_ports(3).unwrap();
        let all: BTreeSet<u16> = first.iter().chain(&second).copied().collect();
        assert_eq!(all.len(), 6, "{first:?} {second:?}");
        if band_below(low).is_some() {
            assert!(all.iter().all(|p| (LOWEST..low).contains(p)), "{all:?}");
        }
    }

    #[test]
    fn a_port_handed_out_is_bindable() {
        let port = free_loopback_ports(1).unwrap()[0];
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[test]
    fn the_band_needs_room_below_the_ephemeral_range() {
        assert_eq!(parse_range_low("32768\t60999\n"), Some(32_768));
        assert_eq!(parse_range_low("garbage"), None);
        assert_eq!(band_below(32_768), Some(20_000..32_768));
        assert_eq!(band_below(21_000), None);
        assert_eq!(band_below(1_024), None);
    }
}
