use crate::broker::ChannelError;
use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use super::*;
use crate::broker::types::{Entries, SourceError};
use tandem_directory::entry::DirectoryEntry;

struct FixedDirectory(Entries);

impl DirectorySource for FixedDirectory {
    fn entries(&self) -> BoxFuture<'_, Result<Entries, SourceError>> {
        let entries = self.0.clone();
        Box::pin(async move { Ok(entries) })
    }
}

/// A fake channel: delivers to the operators it lists, records what it got, answers or fails.
struct Fake {
    kind: &'static str,
    reaches: Vec<&'static str>,
    fail: Option<ChannelError>,
    hold: Option<Arc<Notify>>,
    seen: Mutex<Vec<HyperRequest>>,
}

impl Fake {
    fn new(kind: &'static str, reaches: &[&'static str]) -> Self {
        Self {
            kind,
            reaches: reaches.to_vec(),
            fail: None,
            hold: None,
            seen: Mutex::new(Vec::new()),
        }
    }
}

impl Channel for Fake {
    fn type_name(&self) -> &'static str {
        self.kind
    }
    fn can_deliver_to(&self, address: &Address, _recipient: &DirectoryEntry) -> bool {
        self.reaches.contains(&address.operator.as_str())
    }
    fn deliver(
        &self,
        request: HyperRequest,
        _client: ClientInfo,
    ) -> BoxFuture<'_, Result<HyperResponse, DeliveryError>> {
        self.seen.lock().unwrap().push(request.clone());
        Box::pin(async move {
            if let Some(hold) = &self.hold {
                hold.notified().await;
            }
            match &self.fail {
                Some(e) => Err(e.clone().into()),
                None => Ok(HyperResponse::result(
                    request.id,
                    [("via".to_owned(), json!(self.kind))].into_iter().collect(),
                )),
            }
        })
    }
}

fn entry(name: &str, groups: &[&str], services: Value) -> DirectoryEntry {
    let mut e = DirectoryEntry::new(name);
    e.groups = groups.iter().map(|g| g.to_string()).collect();
    e.services = serde_json::from_value(services).unwrap();
    e
}

fn directory() -> Arc<dyn DirectorySource> {
    let services = json!([
        {"name": "internals", "permissions": [{"group": "health-departments", "rights": ["call"]}],
         "methods": [{"name": "_ping", "permissions": []}, {"name": "_directory", "permissions": []},
                     {"name": "echo", "permissions": []}]},
        {"name": "proxying", "permissions": [{"group": "proxy-providers", "rights": ["call"]}],
         "methods": [{"name": "_connectionRequest", "permissions": []}]}]);
    let mut map = BTreeMap::new();
    for e in [
        entry("hd-1", &["health-departments"], services.clone()),
        entry("hd-2", &["health-departments"], services),
        entry("ls-1", &["labs"], json!([])),
        entry("proxy", &["proxy-providers"], json!([])),
    ] {
        map.insert(e.name.clone(), e);
    }
    Arc::new(FixedDirectory(Arc::new(map)))
}

fn broker() -> MessageBroker {
    MessageBroker::new("hd-1".parse().unwrap(), directory(), Duration::from_secs(5))
}

fn client(name: &str) -> ClientInfo {
    ClientInfo {
        name: name.parse().unwrap(),
        entry: DirectoryEntry::new("stale, replaced by the broker"),
    }
}

fn request(method: &str, id: &str) -> HyperRequest {
    HyperRequest {
        method: method.into(),
        params: Map::new(),
        id: Address::format(method, id),
        client_name: String::new(),
    }
}

fn error_of(response: &HyperResponse) -> (i64, &str) {
    let e = response.error.as_ref().expect("an error response");
    (e.code, e.message.as_str())
}

#[tokio::test]
async fn the_first_channel_that_can_deliver_wins_in_settings_order() {
    let b = broker();
    let first = Arc::new(Fake::new("first", &["ls-1"]));
    let second = Arc::new(Fake::new("second", &["hd-2", "ls-1"]));
    b.add_channel(first.clone()).unwrap();
    b.add_channel(second.clone()).unwrap();
    let r = b
        .deliver(request("hd-2.echo", "1"), client("hd-1"))
        .await
        .unwrap();
    assert_eq!(r.result.unwrap()["via"], "second");
    let r = b
        .deliver(request("ls-1.echo", "1"), client("hd-1"))
        .await
        .unwrap();
    assert_eq!(r.result.unwrap()["via"], "first");
    assert_eq!(
        b.add_channel(Arc::new(Fake::new("first", &[]))),
        Err(BrokerError::DuplicateChannel("first"))
    );
}

#[tokio::test]
async fn the_callers_entry_is_injected_as_client() {
    let b = broker();
    let ch = Arc::new(Fake::new("c", &["hd-1"]));
    b.add_channel(ch.clone()).unwrap();
    b.deliver(request("hd-1.echo", "7"), client("hd-2"))
        .await
        .unwrap();
    let seen = ch.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.id, "hd-1.echo(7)");
    assert_eq!(seen.params["_client"]["name"], "hd-2");
    assert_eq!(
        seen.params["_client"]["entry"]["name"], "hd-2",
        "the directory's entry, not the caller's claim"
    );
    assert_eq!(
        seen.params["_client"]["entry"]["groups"],
        json!(["health-departments"])
    );
}

#[tokio::test]
async fn a_caller_without_permission_gets_403_and_reaches_no_channel() {
    let b = broker();
    let ch = Arc::new(Fake::new("c", &["hd-1"]));
    b.add_channel(ch.clone()).unwrap();
    let r = b
        .deliver(request("hd-1.echo", "1"), client("ls-1"))
        .await
        .unwrap();
    assert_eq!(
        error_of(&r),
        (403, "Permission denied for method 'echo' and client 'ls-1'")
    );
    assert_eq!(r.id, "hd-1.echo(1)");
    let r = b
        .deliver(request("hd-1.notlisted", "1"), client("hd-2"))
        .await
        .unwrap();
    assert_eq!(error_of(&r).0, 403, "methods no service lists are denied");
    assert!(ch.seen.lock().unwrap().is_empty());
    let r = b
        .deliver(request("hd-1.notlisted", "1"), client("hd-1"))
        .await
        .unwrap();
    assert!(r.error.is_none(), "the operator itself is not checked");
}

#[tokio::test]
async fn unknown_callers_recipients_and_bad_ids_are_delivery_errors() {
    let b = broker();
    b.add_channel(Arc::new(Fake::new("c", &["hd-2"]))).unwrap();
    let e = b
        .deliver(request("nobody.echo", "1"), client("hd-1"))
        .await
        .unwrap_err();
    assert_eq!(e, DeliveryError::UnknownOperator("nobody".into()));
    let e = b
        .deliver(request("hd-2.echo", "1"), client("stranger"))
        .await
        .unwrap_err();
    assert_eq!(e, DeliveryError::UnknownOperator("stranger".into()));
    let mut bad = request("hd-2.echo", "1");
    bad.id = "hd-2.echo()".into();
    assert_eq!(
        b.deliver(bad, client("hd-1")).await.unwrap_err(),
        DeliveryError::BadAddress
    );
    let e = b
        .deliver(request("hd-1.echo", "1"), client("hd-1"))
        .await
        .unwrap_err();
    assert_eq!(e, DeliveryError::NoChannel);
    assert_eq!(e.to_string(), "no channel can deliver this request");
}

#[tokio::test]
async fn a_failing_channel_becomes_a_500_naming_its_index() {
    let b = broker();
    b.add_channel(Arc::new(Fake::new("a", &[]))).unwrap();
    b.add_channel(Arc::new(Fake {
        fail: Some(ChannelError::ClientDisconnected),
        ..Fake::new("b", &["hd-2"])
    }))
    .unwrap();
    let r = b
        .deliver(request("hd-2.echo", "1"), client("hd-1"))
        .await
        .unwrap();
    assert_eq!(
        error_of(&r),
        (
            500,
            "Channel 1 encountered an error delivering the message: client disconnected"
        )
    );
}

#[tokio::test]
async fn a_channel_past_the_deadline_becomes_a_500_timeout() {
    let b = MessageBroker::new(
        "hd-1".parse().unwrap(),
        directory(),
        Duration::from_millis(200),
    );
    b.add_channel(Arc::new(Fake {
        hold: Some(Arc::new(Notify::new())),
        ..Fake::new("slow", &["hd-2"])
    }))
    .unwrap();
    let r = b
        .deliver(request("hd-2.echo", "1"), client("hd-1"))
        .await
        .unwrap();
    let (code, message) = error_of(&r);
    assert_eq!(code, 500);
    assert!(
        message.contains("hd-2 did not answer within 0.2s"),
        "{message}"
    );
    assert_eq!(b.in_flight(), 0);
}

#[tokio::test]
async fn the_same_id_in_flight_twice_is_a_loop() {
    let b = Arc::new(broker());
    let hold = Arc::new(Notify::new());
    let ch = Arc::new(Fake {
        hold: Some(hold.clone()),
        ..Fake::new("c", &["hd-2"])
    });
    b.add_channel(ch.clone()).unwrap();
    let first = tokio::spawn({
        let b = b.clone();
        async move { b.deliver(request("hd-2.echo", "1"), client("hd-1")).await }
    });
    while b.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    let e = b
        .deliver(request("hd-2.echo", "1"), client("hd-1"))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "request hd-2.echo(1) is already being processed (maybe a delivery loop)"
    );
    hold.notify_one();
    assert!(first.await.unwrap().unwrap().error.is_none());
    assert_eq!(b.in_flight(), 0);
    hold.notify_one();
    assert!(
        b.deliver(request("hd-2.echo", "1"), client("hd-1"))
            .await
            .is_ok(),
        "free again afterwards"
    );
}

#[tokio::test]
async fn ping_answers_with_version_time_params_and_own_entry() {
    let b = broker().with_version("v-test");
    let mut req = request("hd-1._ping", "n:5");
    req.params.insert("x".into(), json!(1));
    let r = b.deliver(req, client("hd-2")).await.unwrap();
    assert_eq!(
        r.id, "n:5",
        "the original answers with the caller's original id"
    );
    let result = Value::Object(r.result.unwrap());
    assert_eq!(result["version"], "v-test");
    assert_eq!(result["params"]["x"], 1);
    assert_eq!(result["params"]["_client"]["name"], "hd-2");
    assert_eq!(result["serverInfo"]["name"], "hd-1");
    let ts = result["timestamp"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    let r = b
        .deliver(request("hd-1._ping", "1"), client("proxy"))
        .await
        .unwrap();
    assert_eq!(error_of(&r).0, 403, "internal methods obey permissions too");
}

#[tokio::test]
async fn directory_filters_entries_by_query() {
    let b = broker();
    let mut req = request("hd-1._directory", "1");
    req.params
        .insert("group".into(), json!("health-departments"));
    let r = b.deliver(req, client("hd-1")).await.unwrap();
    let names: Vec<_> = r.result.unwrap()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("hd-1"), json!("hd-2")]);
    let mut req = request("hd-1._directory", "2");
    req.params.insert("channels".into(), json!("not a list"));
    assert!(b.deliver(req, client("hd-1")).await.is_err());
}

struct Accepting;

impl ConnectionRequestHandler for Accepting {
    fn handle_connection_request<'a>(
        &'a self,
        address: &'a Address,
        _request: &'a HyperRequest,
        caller: &'a ClientInfo,
    ) -> BoxFuture<'a, Result<Option<HyperResponse>, DeliveryError>> {
        assert_eq!(
            caller.name, "proxy",
            "the handler sees the authenticated caller"
        );
        Box::pin(async move { Ok(Some(HyperResponse::result(address.id.clone(), Map::new()))) })
    }
}

#[tokio::test]
async fn connection_requests_go_to_the_handler_or_fail_clearly() {
    let b = broker();
    let e = b
        .deliver(request("hd-1._connectionRequest", "1"), client("proxy"))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("no channel accepted the request"),
        "{e}"
    );
    b.add_connection_handler(Arc::new(Accepting)).unwrap();
    let r = b
        .deliver(request("hd-1._connectionRequest", "1"), client("proxy"))
        .await
        .unwrap();
    assert!(r.error.is_none());
}
