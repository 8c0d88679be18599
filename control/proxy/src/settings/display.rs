//! The proxy settings' summary that `check-settings` prints.

use std::fmt;

use super::ProxySettings;

/// A summary for `check-settings`.
impl fmt::Display for ProxySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.public {
            writeln!(f, "public.name: {}", p.name)?;
            writeln!(f, "public.tls_bind_address: {}", p.tls_bind_address)?;
            writeln!(
                f,
                "public.internal_bind_address: {}",
                p.internal_bind_address
            )?;
            writeln!(f, "public.internal_endpoint: {:?}", p.internal_endpoint)?;
            writeln!(f, "public.accept_timeout: {:?}", p.accept_timeout)?;
            writeln!(f, "public.datastore: {}", p.datastore)?;
            writeln!(f, "public.jsonrpc_client: {}", p.jsonrpc_client)?;
            writeln!(f, "public.jsonrpc_server: {}", p.jsonrpc_server)?;
            writeln!(f, "public.call_timeout: {:?}", p.call_timeout)?;
            let e = &p.engine.config;
            writeln!(
                f,
                "public.engine: cores={:?} driver={:?} pipe_size={} max_pairs_per_core={} drain_grace={:?}",
                e.cores, e.driver, e.pipe_size, e.max_pairs_per_core, p.engine.drain_grace
            )?;
            writeln!(
                f,
                "public.limits: tcp_rate_limits={:?} sni_pairs_per_source={} sni_pairs_per_domain={}",
                p.tcp_rate_limits, e.sni_pairs_per_source, e.sni_pairs_per_domain
            )?;
            writeln!(
                f,
                "public.announcements: per_operator_quota={} max_lifetime={:?}",
                p.announcements.per_operator_quota, p.announcements.max_lifetime
            )?;
            writeln!(
                f,
                "public.quotas: default={:?} operators={}",
                p.quotas.default,
                p.quotas.operators.len()
            )?;
            if let Some(c) = &p.control {
                writeln!(
                    f,
                    "public.control: bind={} admins={:?} tls({})",
                    c.bind_address, c.admins, c.tls
                )?;
            }
        }
        if let Some(p) = &self.private {
            write!(f, "{p}")?;
        }
        if let Some(m) = &self.metrics {
            writeln!(f, "metrics: {}", m.bind_address)?;
        }
        Ok(())
    }
}
