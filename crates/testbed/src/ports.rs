//! Free TCP ports on 127.0.0.1.

use std::net::{Ipv4Addr, TcpListener};

use crate::{Error, Result};

/// `count` distinct ports that were free a moment ago (found by binding port 0). All listeners stay
/// open until every port is chosen, so the ports differ; another process may still take one before
/// the caller binds it, which is rare enough on a developer machine.
pub fn free_loopback_ports(count: usize) -> Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::FreePort)?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr().map_err(Error::FreePort)?.port()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::free_loopback_ports;

    #[test]
    fn ports_are_distinct_and_non_zero() {
        let ports = free_loopback_ports(3).unwrap();
        assert_eq!(ports.len(), 3);
        assert!(ports.iter().all(|p| *p != 0));
        assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2]);
    }
}
