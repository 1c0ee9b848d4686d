//! Which upstreams a message goes to, by the route its credential names.
//!
//! A route is an ordered list of upstreams: the first is the primary, the
//! others are failover in order. Each attempt starts at the upstream after
//! the one that last failed (a new message at the first), skipping those
//! whose circuit breaker is open; when every one is open the message waits
//! for the earliest cool-down to end (see `breaker`). Each upstream carries
//! its own failure policy (`on_ambiguous`, breaker settings) from the config.

use std::collections::HashMap;
use std::sync::Arc;

use super::breaker::{BreakerSettings, Breakers, Permit};
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

/// `on_ambiguous`: the upstream may or may not have taken the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnAmbiguous {
    /// Try again (possibly a duplicate; logged as such).
    #[default]
    Retry,
    /// Never risk a duplicate: move the message to dead letters.
    DeadLetter,
}

/// How failures of one upstream are handled (`[upstreams.NAME]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UpstreamPolicy {
    /// A request that timed out after it was sent: retry (possible
    /// duplicate) or dead-letter (possible loss, never a duplicate).
    pub on_ambiguous: OnAmbiguous,
    pub breaker: BreakerSettings,
}

/// What the acceptance stage must do to mail on a route, because of what
/// its upstreams' providers do with the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptPolicy {
    /// Some upstream delivers to the header recipients and refuses
    /// header-only ones: refuse such mail at the final dot.
    pub refuse_header_only: bool,
    /// Not every upstream has `pass_control_headers = true`.
    pub strip_control_headers: bool,
}

impl AcceptPolicy {
    /// For a route nobody configured: the safe choice on both counts.
    pub const STRICT: AcceptPolicy = AcceptPolicy {
        refuse_header_only: true,
        strip_control_headers: true,
    };
}

/// Route name → its [`AcceptPolicy`], with the same fallback to the
/// `default` route as delivery uses.
#[derive(Debug, Clone, Default)]
pub struct AcceptPolicies(HashMap<String, AcceptPolicy>);

impl AcceptPolicies {
    pub fn for_route(&self, route: &str) -> AcceptPolicy {
        self.0
            .get(route)
            .or_else(|| self.0.get(DEFAULT_ROUTE))
            .copied()
            .unwrap_or(AcceptPolicy::STRICT)
    }
}

/// Route name → ordered upstreams, plus each upstream's failure policy.
/// Cheap to clone.
#[derive(Clone, Default)]
pub struct Router {
    routes: HashMap<String, Arc<[Arc<dyn Upstream>]>>,
    policies: HashMap<String, UpstreamPolicy>,
    accept: AcceptPolicies,
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

    /// Sets the failure policy of upstream `name` (default otherwise).
    pub fn set_policy(&mut self, name: impl Into<String>, policy: UpstreamPolicy) {
        self.policies.insert(name.into(), policy);
    }

    /// The failure policy of upstream `name`.
    pub fn policy(&self, name: &str) -> UpstreamPolicy {
        self.policies.get(name).copied().unwrap_or_default()
    }

    /// What acceptance must do for each route (see [`AcceptPolicy`]).
    pub fn accept_policies(&self) -> AcceptPolicies {
        self.accept.clone()
    }

    /// Breaker settings of every upstream some route uses.
    pub fn breaker_settings(&self) -> HashMap<String, BreakerSettings> {
        self.routes
            .values()
            .flat_map(|ups| ups.iter())
            .map(|u| (u.name().to_string(), self.policy(u.name()).breaker))
            .collect()
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

    /// Each route with its upstreams' names, in failover order.
    pub fn routes(&self) -> impl Iterator<Item = (&str, Vec<&str>)> {
        self.routes
            .iter()
            .map(|(name, ups)| (name.as_str(), ups.iter().map(|u| u.name()).collect()))
    }

    /// Every upstream some route uses, once each, by name.
    pub fn upstreams(&self) -> Vec<Arc<dyn Upstream>> {
        let mut seen = std::collections::BTreeMap::new();
        for ups in self.routes.values() {
            for u in ups.iter() {
                seen.entry(u.name().to_string())
                    .or_insert_with(|| Arc::clone(u));
            }
        }
        seen.into_values().collect()
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

/// Where an attempt goes.
pub enum Choice {
    /// Deliver to `upstream` (index `index` in the route), holding its
    /// breaker's permit.
    Deliver {
        index: usize,
        upstream: Arc<dyn Upstream>,
        permit: Permit,
    },
    /// Every upstream's breaker is open: wait until clock time `until`
    /// (the earliest moment one of them lets a probe through).
    Wait { until: u64 },
}

impl Resolved<'_> {
    /// The upstream for the attempt after `failures` failed ones, ignoring
    /// breakers: the failover order when each attempt fails over.
    pub fn pick(&self, failures: u32) -> &Arc<dyn Upstream> {
        // add_route refuses empty lists, so len >= 1.
        let n = self.upstreams.len().max(1);
        &self.upstreams[failures as usize % n]
    }

    /// Where failover order starts for an attempt: a new message at the
    /// first upstream (so traffic returns to the primary once it recovers),
    /// a retry at the one after the upstream that last failed, else (that
    /// upstream is no longer in the route) where [`Resolved::pick`] points.
    pub fn start(&self, failures: u32, last_upstream: Option<&str>) -> usize {
        let n = self.upstreams.len().max(1);
        if failures == 0 {
            return 0;
        }
        last_upstream
            .and_then(|last| self.upstreams.iter().position(|u| u.name() == last))
            .map_or(failures as usize % n, |i| (i + 1) % n)
    }

    /// The first upstream from `start` on (wrapping around) whose breaker
    /// lets a delivery through, or how long to wait when none does.
    pub fn choose(&self, start: usize, breakers: &Arc<Breakers>) -> Choice {
        let n = self.upstreams.len();
        let mut until = u64::MAX;
        for i in 0..n {
            let index = (start + i) % n;
            let upstream = &self.upstreams[index];
            match breakers.admit(upstream.name()) {
                Ok(permit) => {
                    return Choice::Deliver {
                        index,
                        upstream: Arc::clone(upstream),
                        permit,
                    };
                }
                Err(at) => until = until.min(at),
            }
        }
        Choice::Wait { until }
    }
}

/// Builds every upstream client and the route table from the config.
/// Why the configured routes could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Upstream(#[from] crate::upstream::UpstreamError),
    #[error(transparent)]
    Route(#[from] RouterError),
}

pub fn build_router(config: &crate::config::Config) -> Result<Router, BuildError> {
    let mut upstreams = HashMap::new();
    for (name, u) in &config.upstreams {
        let mut built = crate::upstream::build(name, &u.settings)?;
        if !u.dkim {
            built = crate::dkim::WithoutSignatures::wrap(built);
        }
        let pacer = crate::quota::Pacer::new(u.max_concurrency, u.rate);
        built = crate::deliver::Paced::wrap(built, pacer);
        upstreams.insert(name.clone(), built);
    }
    let mut router = Router::from_names(
        config.routes.iter().map(|(n, r)| (n, &r.upstreams)),
        &upstreams,
    )?;
    for (route, r) in &config.routes {
        let ups: Vec<&crate::config::UpstreamEntry> = r
            .upstreams
            .iter()
            .filter_map(|u| config.upstreams.get(u))
            .collect();
        let policy = AcceptPolicy {
            refuse_header_only: ups.iter().any(|u| {
                u.settings.header_recipients()
                    == Some(crate::inspect::recipients::HeaderRecipients::Refuse)
            }),
            strip_control_headers: !ups.iter().all(|u| u.pass_control_headers),
        };
        router.accept.0.insert(route.clone(), policy);
    }
    for (name, u) in &config.upstreams {
        router.set_policy(
            name.clone(),
            UpstreamPolicy {
                on_ambiguous: u.on_ambiguous,
                breaker: BreakerSettings {
                    failures: u.breaker_failures.max(1),
                    cooldown: u.breaker_cooldown,
                },
            },
        );
    }
    Ok(router)
}

#[cfg(test)]
mod tests;
