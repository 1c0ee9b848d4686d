use super::*;
use crate::upstream::{DeliverFuture, Delivered, OutboundMessage};

struct Named(&'static str);
impl Upstream for Named {
    fn name(&self) -> &str {
        self.0
    }
    fn deliver<'a>(&'a self, _: &'a OutboundMessage<'a>) -> DeliverFuture<'a> {
        Box::pin(async { Ok(Delivered::default()) })
    }
}

fn ups() -> HashMap<String, Arc<dyn Upstream>> {
    let mut m: HashMap<String, Arc<dyn Upstream>> = HashMap::new();
    m.insert("graph".into(), Arc::new(Named("graph")));
    m.insert("ses".into(), Arc::new(Named("ses")));
    m.insert("outbox".into(), Arc::new(Named("outbox")));
    m
}

#[test]
fn resolves_falls_back_to_default_and_rotates() {
    let routes = [
        (
            "transactional".to_string(),
            vec!["graph".to_string(), "ses".to_string()],
        ),
        ("default".to_string(), vec!["outbox".to_string()]),
    ];
    let router = Router::from_names(routes.iter().map(|(r, u)| (r, u)), &ups()).unwrap();
    let r = router.resolve("transactional").unwrap();
    assert_eq!(r.route, "transactional");
    let picks: Vec<&str> = (0..4).map(|n| r.pick(n).name()).collect();
    assert_eq!(picks, ["graph", "ses", "graph", "ses"]);
    let r = router.resolve("removed-route").unwrap();
    assert_eq!((r.route, r.pick(3).name()), ("default", "outbox"));
}

#[test]
fn no_default_and_unknown_route_resolves_to_nothing() {
    let routes = [("a".to_string(), vec!["ses".to_string()])];
    let router = Router::from_names(routes.iter().map(|(r, u)| (r, u)), &ups()).unwrap();
    assert!(router.resolve("b").is_none());
    let bad = [("a".to_string(), vec!["nope".to_string()])];
    let err = Router::from_names(bad.iter().map(|(r, u)| (r, u)), &ups()).unwrap_err();
    assert!(matches!(err, RouterError::UnknownUpstream { .. }), "{err}");
    assert!(matches!(
        Router::new().add_route("x", vec![]),
        Err(RouterError::Empty(_))
    ));
}
