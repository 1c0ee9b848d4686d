//! Which upstreams a message goes to, by the route its credential names.
//!
//! A route is an ordered list of upstreams. Attempt N of a message goes to
//! upstream N mod len, so a transient failure on the first upstream makes
//! the next attempt use the second (simple failover until circuit breakers
//! arrive).

use std::collections::HashMap;
use std::sync::Arc;

use crate::upstream::Upstream;

/// Name of the route used by credentials without `route`, and for messages
/// whose route was removed from the config while they were queued.
pub const DEFAULT_ROUTE: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("route {route:?} names upstream {upstream:?}, which is not defined")]
    UnknownUpstream { route: String, upstream: String },
    #[error("route {0:?} has no upstreams")]
    Empty(String),
}

/// Route name → ordered upstreams. Cheap to clone.
#[derive(Clone, Default)]
pub struct Router {
    routes: HashMap<String, Arc<[Arc<dyn Upstream>]>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for (name, ups) in &self.routes {
            let names: Vec<&str> = ups.iter().map(|u| u.name()).collect();
            map.entry(name, &names);
        }
        map.finish()
    }
}

/// What a route name resolved to.
pub struct Resolved<'a> {
    /// The route actually used (`default` after a fallback).
    pub route: &'a str,
    pub upstreams: &'a [Arc<dyn Upstream>],
}

impl Router {
    pub fn new() -> Router {
        Router::default()
    }

    /// Adds or replaces a route.
    pub fn add_route(
        &mut self,
        name: impl Into<String>,
        upstreams: Vec<Arc<dyn Upstream>>,
    ) -> Result<(), RouterError> {
        let name = name.into();
        if upstreams.is_empty() {
            return Err(RouterError::Empty(name));
        }
        self.routes.insert(name, upstreams.into());
        Ok(())
    }

    /// Builds a router from route → upstream-name lists and the built
    /// upstreams by name (the shape of the config's `[routes]` and
    /// `[upstreams]`).
    pub fn from_names<'a, R, U>(
        routes: R,
        upstreams: &HashMap<String, Arc<dyn Upstream>>,
    ) -> Result<Router, RouterError>
    where
        R: IntoIterator<Item = (&'a String, U)>,
        U: IntoIterator<Item = &'a String>,
    {
        let mut router = Router::new();
        for (route, names) in routes {
            let mut list = Vec::new();
            for name in names {
                let up = upstreams
                    .get(name)
                    .ok_or_else(|| RouterError::UnknownUpstream {
                        route: route.clone(),
                        upstream: name.clone(),
                    })?;
                list.push(up.clone());
            }
            router.add_route(route.clone(), list)?;
        }
        Ok(router)
    }

    /// The upstreams for `route`, falling back to the `default` route.
    pub fn resolve(&self, route: &str) -> Option<Resolved<'_>> {
        let (name, ups) = self
            .routes
            .get_key_value(route)
            .or_else(|| self.routes.get_key_value(DEFAULT_ROUTE))?;
        Some(Resolved {
            route: name,
            upstreams: ups,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The largest message every upstream of `route` can carry (the
    /// smallest of their limits), so failover never meets a message the
    /// next upstream must refuse. None when no upstream has a limit.
    pub fn max_message_size(&self, route: &str) -> Option<u64> {
        self.resolve(route)?
            .upstreams
            .iter()
            .filter_map(|u| u.max_message_size())
            .min()
    }

    /// Every route name with its size limit.
    pub fn size_limits(&self) -> std::collections::BTreeMap<String, u64> {
        self.routes
            .keys()
            .filter_map(|r| Some((r.clone(), self.max_message_size(r)?)))
            .collect()
    }
}

impl Resolved<'_> {
    /// The upstream for the attempt after `failures` failed ones.
    pub fn pick(&self, failures: u32) -> &Arc<dyn Upstream> {
        // add_route refuses empty lists, so len >= 1.
        let n = self.upstreams.len().max(1);
        &self.upstreams[failures as usize % n]
    }
}

/// Builds every upstream client and the route table from the config.
pub fn build_router(config: &crate::config::Config) -> Result<Router, String> {
    let mut upstreams = HashMap::new();
    for (name, u) in &config.upstreams {
        let mut built = crate::upstream::from_config(name, &u.kind).map_err(|e| e.to_string())?;
        if !u.dkim {
            built = crate::dkim::WithoutSignatures::wrap(built);
        }
        let pacer = crate::quota::Pacer::new(u.max_concurrency, u.rate);
        built = crate::deliver::Paced::wrap(built, pacer);
        upstreams.insert(name.clone(), built);
    }
    Router::from_names(
        config.routes.iter().map(|(n, r)| (n, &r.upstreams)),
        &upstreams,
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
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
}
