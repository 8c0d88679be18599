//! [`LateSink`]: the broker owns the channels and the channels deliver into the broker, so inbound
//! channels are built with a sink that is bound to the broker afterwards (by a `Weak`, so that the
//! broker and its channels do not keep each other alive).

use std::sync::{OnceLock, Weak};

use crate::broker::types::{
    BoxFuture, ClientInfo, DeliveryError, HyperRequest, HyperResponse, RequestSink,
};

/// A [`RequestSink`] bound once, after construction, to the real sink.
#[derive(Default)]
pub struct LateSink {
    inner: OnceLock<Weak<dyn RequestSink>>,
}

impl std::fmt::Debug for LateSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LateSink")
            .field("bound", &self.inner.get().is_some())
            .finish()
    }
}

impl LateSink {
    /// An unbound sink: requests fail with "not running" until [`LateSink::bind`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds the sink (e.g. `Arc::downgrade(&broker)`); `false` if it was already bound.
    pub fn bind(&self, sink: Weak<dyn RequestSink>) -> bool {
        self.inner.set(sink).is_ok()
    }
}

impl RequestSink for LateSink {
    fn deliver_request(
        &self,
        request: HyperRequest,
        client: ClientInfo,
    ) -> BoxFuture<'_, Result<HyperResponse, DeliveryError>> {
        let sink = self.inner.get().and_then(Weak::upgrade);
        Box::pin(async move {
            match sink {
                Some(sink) => sink.deliver_request(request, client).await,
                None => Err(DeliveryError::Channel(
                    "the message broker is not running".into(),
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use tandem_directory::entry::DirectoryEntry;

    struct Echo;
    impl RequestSink for Echo {
        fn deliver_request(
            &self,
            request: HyperRequest,
            _client: ClientInfo,
        ) -> BoxFuture<'_, Result<HyperResponse, DeliveryError>> {
            Box::pin(async move { Ok(HyperResponse::result(request.id, request.params)) })
        }
    }

    fn request() -> (HyperRequest, ClientInfo) {
        let request = HyperRequest {
            method: "hd-2.x".into(),
            params: Default::default(),
            id: "hd-2.x(1)".into(),
            client_name: "hd-1".into(),
        };
        let client = ClientInfo {
            name: "hd-1".parse().unwrap(),
            entry: DirectoryEntry::new("hd-1"),
        };
        (request, client)
    }

    #[tokio::test]
    async fn unbound_or_dropped_sinks_fail_and_bound_ones_deliver() {
        let late = LateSink::new();
        let (r, c) = request();
        assert!(late.deliver_request(r, c).await.is_err());
        let echo: Arc<dyn RequestSink> = Arc::new(Echo);
        assert!(late.bind(Arc::downgrade(&echo)));
        assert!(!late.bind(Arc::downgrade(&echo)), "binds once");
        let (r, c) = request();
        assert_eq!(late.deliver_request(r, c).await.unwrap().id, "hd-2.x(1)");
        drop(echo);
        let (r, c) = request();
        assert_eq!(
            late.deliver_request(r, c).await.unwrap_err().kind(),
            "channel"
        );
    }
}
