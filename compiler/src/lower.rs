//! Lowering: the checked model to one artifact body per sidecar.
//!
//! For each sidecar the destinations it may call (its egress, or every service), each
//! destination port's route table for this caller (consumer routes of the caller's namespace
//! replace the producer routes when any exist — the choice Istio makes for GAMMA), entries ranked
//! by Gateway API precedence, and the clusters the actions name. Pure and deterministic.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use mesh_artifact::{
    Body, Cluster, Destination, DestinationPort, Endpoint, MeshInfo, RetryPolicy, RouteTable,
    RuleAction, SidecarInfo, SourcePos, WeightedCluster, cluster_key, rank,
};

use crate::Checked;
use crate::model::{FilterKind, Model, Route, Rule, Service};
use crate::source::{Loc, SourceMap};
use crate::validate::{candidates, default_app_port};

/// Retry budget used when neither the route nor the mesh sets one (MC0502 warns about it).
pub const FALLBACK_RETRY_BUDGET: mesh_artifact::RetryBudget = mesh_artifact::RetryBudget {
    percent: 20,
    min_per_second: 10,
};

/// SPIFFE ID of a service's workload.
pub fn spiffe_id(trust_domain: &str, namespace: &str, name: &str) -> String {
    format!("spiffe://{trust_domain}/ns/{namespace}/sa/{name}")
}

fn pos(sources: &SourceMap, loc: Loc) -> SourcePos {
    let (line, column) = sources.line_col(loc);
    SourcePos {
        file: sources.path(loc.file).to_string(),
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
    }
}

/// The sidecar settings of one service, with defaults applied.
pub fn sidecar_info(model: &Model, svc: &Service) -> SidecarInfo {
    let sc = model.sidecar_for(&svc.namespace, &svc.name);
    let ports = model.mesh.sidecar_ports;
    let app_protocol = sc
        .and_then(|s| s.app_protocol)
        .or_else(|| svc.ports.first().map(|p| p.protocol))
        .unwrap_or(mesh_artifact::Protocol::Http);
    let configured = sc.and_then(|s| s.app_port.as_ref().map(|p| p.v));
    let app_port = configured.or_else(|| default_app_port(svc)).unwrap_or(8080);
    // Without a configured application port, each service port reaches its own target (a
    // `targetPort` naming a container port is unknown here: MC0012).
    let mut app_ports: Vec<mesh_artifact::AppPort> = match configured {
        Some(_) => Vec::new(),
        None => svc
            .ports
            .iter()
            .filter(|p| p.target_name.is_none())
            .map(|p| mesh_artifact::AppPort {
                port: p.port,
                app_port: p.target_port.unwrap_or(p.port),
            })
            .filter(|a| a.app_port != app_port)
            .collect(),
    };
    app_ports.sort_by_key(|a| a.port);
    SidecarInfo {
        service: svc.key(),
        namespace: svc.namespace.clone(),
        identity: spiffe_id(&model.mesh.trust_domain, &svc.namespace, &svc.name),
        inbound_port: sc
            .and_then(|s| s.inbound_port.as_ref())
            .map_or(ports.inbound, |p| p.v),
        outbound_port: sc
            .and_then(|s| s.outbound_port.as_ref())
            .map_or(ports.outbound, |p| p.v),
        admin_port: sc
            .and_then(|s| s.admin_port.as_ref())
            .map_or(ports.admin, |p| p.v),
        app_port,
        app_ports,
        app_protocol,
        authz_mode: sc
            .and_then(|s| s.authz_mode)
            .unwrap_or(model.mesh.authz_mode),
        encoded_slashes: encoded_slashes(model, svc),
    }
}

/// The `encodedSlashes` setting of a service's application: how its sidecar (inbound) and every
/// caller (outbound, before matching its routes) normalize request paths to it.
pub fn encoded_slashes(model: &Model, svc: &Service) -> mesh_artifact::EncodedSlashes {
    model
        .sidecar_for(&svc.namespace, &svc.name)
        .and_then(|s| s.encoded_slashes.as_ref())
        .map_or(mesh_artifact::EncodedSlashes::Reject, |e| e.v)
}

/// Services a sidecar may call, sorted.
pub fn egress_of<'m>(model: &'m Model, svc: &Service) -> Vec<&'m Service> {
    match model
        .sidecar_for(&svc.namespace, &svc.name)
        .and_then(|s| s.egress.as_ref())
    {
        None => model.services.iter().collect(),
        Some(list) => {
            // `services` is sorted by namespace and name: look each entry up.
            let mut out: Vec<&Service> = Vec::new();
            for e in list {
                if e.name == "*" {
                    let start = model
                        .services
                        .partition_point(|s| s.namespace.as_str() < e.namespace.as_str());
                    out.extend(
                        model.services[start..]
                            .iter()
                            .take_while(|s| s.namespace == e.namespace),
                    );
                } else if let Some(s) = model.service(&e.namespace, &e.name) {
                    out.push(s);
                }
            }
            out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            out.dedup_by(|a, b| a.namespace == b.namespace && a.name == b.name);
            out
        }
    }
}

/// Routes that apply to `caller` on `dest`:`port`: the caller namespace's consumer routes when
/// any are attached, else the producer routes.
pub fn routes_for<'m>(
    model: &'m Model,
    caller_ns: &str,
    dest: &Service,
    port: u16,
) -> Vec<&'m Route> {
    routes_and_consumer(model, caller_ns, dest, port).0
}

/// [`routes_for`], and whether the routes are the caller namespace's consumer routes.
fn routes_and_consumer<'m>(
    model: &'m Model,
    caller_ns: &str,
    dest: &Service,
    port: u16,
) -> (Vec<&'m Route>, bool) {
    let attached = |r: &&Route| {
        r.parents.iter().any(|p| {
            p.is_service()
                && p.namespace == dest.namespace
                && p.name == dest.name
                && p.port.as_ref().is_none_or(|x| x.v == port)
        })
    };
    let key = dest.key();
    let consumer: Vec<&Route> = model
        .routes_of(&key)
        .filter(|r| r.namespace == caller_ns && r.namespace != dest.namespace)
        .filter(attached)
        .collect();
    if !consumer.is_empty() {
        return (consumer, true);
    }
    let producer = model
        .routes_of(&key)
        .filter(|r| r.namespace == dest.namespace)
        .filter(attached)
        .collect();
    (producer, false)
}

/// Which route table a destination port gets: it depends only on the destination, the port,
/// and, when consumer routes apply, the caller's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct TableKey {
    namespace: String,
    name: String,
    port: u16,
    consumer_ns: Option<String>,
}

/// A lowered route table and the clusters its actions name (service, port, version).
pub struct CachedTable<'m> {
    table: RouteTable,
    clusters: Vec<(&'m Service, u16, Option<String>)>,
    /// The table's canonical JSON, made the first time a sidecar's artifact is encoded.
    encoded: std::sync::OnceLock<Option<Box<serde_json::value::RawValue>>>,
}

/// A route table in a body that [`mesh_artifact::encode`] writes: the table shared by every
/// sidecar that calls the same destination port, which serializes as its JSON encoded once
/// (exactly the bytes the table itself would serialize to) instead of once per sidecar.
#[derive(Clone)]
pub struct SharedTable<'m>(std::sync::Arc<CachedTable<'m>>);

impl serde::Serialize for SharedTable<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let encoded = self
            .0
            .encoded
            .get_or_init(|| serde_json::value::to_raw_value(&self.0.table).ok());
        match encoded {
            Some(raw) => raw.serialize(serializer),
            None => self.0.table.serialize(serializer),
        }
    }
}

/// Route tables lowered once and shared by every sidecar that calls the same destination port:
/// in a mesh where each service is called by a handful of others, each table would otherwise be
/// ranked and numbered once per caller. Safe to share between threads; the result is the same
/// as lowering each sidecar on its own.
#[derive(Default)]
pub struct TableCache<'m> {
    tables: std::sync::Mutex<HashMap<TableKey, std::sync::Arc<CachedTable<'m>>>>,
    /// Clusters by key: a cluster depends only on its service, port and version, and most
    /// sidecars name the same few clusters of each destination.
    clusters: std::sync::Mutex<HashMap<String, Cluster>>,
}

impl<'m> TableCache<'m> {
    fn get(&self, key: &TableKey) -> Option<std::sync::Arc<CachedTable<'m>>> {
        match self.tables.lock() {
            Ok(t) => t.get(key).cloned(),
            Err(poisoned) => poisoned.into_inner().get(key).cloned(),
        }
    }

    fn put(&self, key: TableKey, table: std::sync::Arc<CachedTable<'m>>) {
        match self.tables.lock() {
            Ok(mut t) => t.insert(key, table),
            Err(poisoned) => poisoned.into_inner().insert(key, table),
        };
    }

    fn cluster(&self, key: &str) -> Option<Cluster> {
        match self.clusters.lock() {
            Ok(c) => c.get(key).cloned(),
            Err(poisoned) => poisoned.into_inner().get(key).cloned(),
        }
    }

    fn put_cluster(&self, key: &str, cluster: &Cluster) {
        match self.clusters.lock() {
            Ok(mut c) => c.insert(key.to_string(), cluster.clone()),
            Err(poisoned) => poisoned
                .into_inner()
                .insert(key.to_string(), cluster.clone()),
        };
    }
}

struct Lowerer<'a, 'c> {
    model: &'a Model,
    shared: &'c TableCache<'a>,
    sources: &'a SourceMap,
    clusters: BTreeMap<String, Cluster>,
    /// While a route table is lowered: every cluster its actions name, in order.
    used: Option<Vec<(&'a Service, u16, Option<String>)>>,
}

impl<'a> Lowerer<'a, '_> {
    /// Add the cluster for a service port (and version); returns its key.
    fn cluster(&mut self, svc: &Service, port: u16, version: Option<&str>) -> String {
        let key = cluster_key(&svc.key(), port, version);
        self.add_cluster(svc, port, version, &key);
        key
    }

    fn add_cluster(&mut self, svc: &Service, port: u16, version: Option<&str>, key: &str) {
        if self.clusters.contains_key(key) {
            return;
        }
        if let Some(c) = self.shared.cluster(key) {
            self.clusters.insert(key.to_string(), c);
            return;
        }
        let info = sidecar_info(self.model, svc);
        let protocol = svc
            .ports
            .iter()
            .find(|p| p.port == port)
            .map_or(mesh_artifact::Protocol::Http, |p| p.protocol);
        let configured: Vec<&crate::model::EndpointCfg> = match version {
            Some(v) => svc
                .versions
                .iter()
                .filter(|x| x.name == v)
                .flat_map(|x| x.endpoints.iter())
                .collect(),
            None => svc
                .endpoints
                .iter()
                .chain(svc.versions.iter().flat_map(|x| x.endpoints.iter()))
                .collect(),
        };
        let mut endpoints: Vec<Endpoint> = configured
            .iter()
            .map(|e| Endpoint {
                address: e.address.clone(),
                port: e.port.unwrap_or(info.inbound_port),
            })
            .collect();
        if endpoints.is_empty()
            && configured.is_empty()
            && (version.is_none() || svc.versions.iter().all(|x| x.endpoints.is_empty()))
        {
            // In Kubernetes the service's DNS name reaches its pods; their sidecars listen on the
            // inbound port.
            endpoints.push(Endpoint {
                address: format!("{}.{}.svc.cluster.local", svc.name, svc.namespace),
                port: info.inbound_port,
            });
        }
        endpoints.sort();
        endpoints.dedup();
        let cluster = Cluster {
            service: svc.key(),
            port,
            version: version.map(str::to_string),
            protocol,
            identity: info.identity,
            endpoints,
        };
        self.shared.put_cluster(key, &cluster);
        self.clusters.insert(key.to_string(), cluster);
    }

    fn action(&mut self, rule: &Rule) -> RuleAction {
        let mut action = RuleAction::default();
        let mut missing = false;
        // The model outlives the lowerer: services borrowed from it need no copy.
        let model: &'a Model = self.model;
        for b in &rule.backends {
            let Some(svc) = model.service(&b.namespace, &b.name) else {
                missing = true;
                continue;
            };
            let port = match &b.port {
                Some(p) => Some(p.v),
                None if svc.ports.len() == 1 => svc.ports.first().map(|p| p.port),
                None => None,
            };
            let Some(port) = port.filter(|p| svc.ports.iter().any(|sp| sp.port == *p)) else {
                missing = true;
                continue;
            };
            let version = b.version.as_ref().map(|v| v.v.as_str());
            let key = self.cluster(svc, port, version);
            if let Some(used) = &mut self.used {
                used.push((svc, port, version.map(str::to_string)));
            }
            action.backends.push(WeightedCluster {
                cluster: key,
                weight: b.weight,
            });
        }
        for f in &rule.filters {
            match &f.kind {
                FilterKind::RequestHeaders(m) => action.request_headers = m.clone(),
                FilterKind::ResponseHeaders(m) => action.response_headers = m.clone(),
                FilterKind::Redirect(r) => action.redirect = Some(r.clone()),
                FilterKind::Rewrite(r) => action.rewrite = Some(r.clone()),
                FilterKind::Unsupported(_) => {}
            }
        }
        let total: u64 = action.backends.iter().map(|b| u64::from(b.weight)).sum();
        if action.redirect.is_none() && (missing || total == 0) {
            action.fixed_status = Some(500);
        }
        let nonzero = |ms: u64| (ms > 0).then_some(ms);
        action.timeouts.request_ms = rule
            .timeouts
            .request
            .as_ref()
            .map(|t| t.v)
            .or(self.model.mesh.default_request_timeout_ms)
            .and_then(nonzero);
        action.timeouts.backend_request_ms = rule
            .timeouts
            .backend_request
            .as_ref()
            .and_then(|t| nonzero(t.v));
        if let Some(r) = &rule.retry {
            if r.attempts > 0 {
                let codes = if r.codes.is_empty() {
                    vec![502, 503, 504]
                } else {
                    r.codes.clone()
                };
                action.retry = Some(RetryPolicy {
                    attempts: r.attempts,
                    codes,
                    backoff_ms: r.backoff_ms,
                    max_backoff_ms: r.max_backoff_ms.unwrap_or(r.backoff_ms.saturating_mul(10)),
                    budget: r
                        .budget
                        .or(self.model.mesh.default_retry_budget)
                        .unwrap_or(FALLBACK_RETRY_BUDGET),
                });
            }
        }
        action
    }

    fn table(&mut self, routes: &[&Route]) -> RouteTable {
        let mut actions = Vec::new();
        let mut ranked = Vec::new();
        for route in routes {
            let mut rule_action: BTreeMap<u32, u32> = BTreeMap::new();
            for (ri, rule) in route.rules.iter().enumerate() {
                let a = self.action(rule);
                rule_action.insert(
                    u32::try_from(ri).unwrap_or(u32::MAX),
                    u32::try_from(actions.len()).unwrap_or(u32::MAX),
                );
                actions.push(a);
            }
            for mut c in candidates(route) {
                c.entry.action = rule_action.get(&c.entry.rule).copied().unwrap_or(0);
                c.entry.source = pos(self.sources, c.loc);
                let key = rank::precedence_key(&c.entry, route.creation_timestamp.as_deref());
                ranked.push((key, c.entry));
            }
        }
        ranked.sort_by(|a, b| a.0.cmp(&b.0));
        let entries: Vec<_> = ranked.into_iter().map(|(_, e)| e).collect();
        // Renumber actions in order of first use so the table is canonical, sharing one action
        // among rules that do the same thing (a table of thousands of rules that all forward to
        // one backend holds that action once).
        let mut renumbered: HashMap<u32, u32> = HashMap::new();
        let mut distinct: HashMap<String, u32> = HashMap::new();
        let mut new_actions: Vec<RuleAction> = Vec::new();
        let entries = entries
            .into_iter()
            .map(|mut e| {
                e.action = *renumbered.entry(e.action).or_insert_with(|| {
                    let action = actions.get(e.action as usize).cloned().unwrap_or_default();
                    // Actions are plain data: equal encodings are equal actions.
                    let key = serde_json::to_string(&action).unwrap_or_default();
                    *distinct.entry(key).or_insert_with(|| {
                        new_actions.push(action);
                        u32::try_from(new_actions.len() - 1).unwrap_or(u32::MAX)
                    })
                });
                e
            })
            .collect();
        RouteTable {
            entries,
            actions: new_actions,
        }
    }
}

/// Host names under which `dest` is reachable from a caller in `caller_ns`: its service names
/// and the hostnames of `routes` (validation keeps a route's hostnames from taking another
/// service's names, MC0407).
pub fn hosts_for(dest: &Service, caller_ns: &str, routes: &[&Route]) -> Vec<String> {
    let mut hosts = BTreeSet::new();
    if dest.namespace == caller_ns {
        hosts.insert(dest.name.clone());
    }
    hosts.insert(format!("{}.{}", dest.name, dest.namespace));
    hosts.insert(format!("{}.{}.svc", dest.name, dest.namespace));
    hosts.insert(format!(
        "{}.{}.svc.{}",
        dest.name,
        dest.namespace,
        crate::validate::CLUSTER_DOMAIN
    ));
    for r in routes {
        for h in &r.hostnames {
            if !h.v.starts_with("*.") {
                hosts.insert(h.v.clone());
            }
        }
    }
    hosts.into_iter().collect()
}

/// The artifact body of one sidecar.
pub fn lower_sidecar(checked: &Checked, svc: &Service) -> Body {
    lower_sidecar_with(checked, &crate::policy::slicer(checked), svc)
}

/// The artifact body of one sidecar, slicing policies with a shared slicer (for many sidecars).
pub fn lower_sidecar_with(
    checked: &Checked,
    slicer: &mesh_policy::Slicer<'_>,
    svc: &Service,
) -> Body {
    lower_sidecar_shared(checked, slicer, &TableCache::default(), svc)
}

/// The artifact body of one sidecar, with a slicer and route tables shared by many sidecars.
pub fn lower_sidecar_shared<'m>(
    checked: &'m Checked,
    slicer: &mesh_policy::Slicer<'_>,
    tables: &TableCache<'m>,
    svc: &Service,
) -> Body {
    lower_sidecar_as(checked, slicer, tables, svc, |c| c.table.clone())
}

/// [`lower_sidecar_shared`] for writing: the body holds the shared route tables themselves,
/// each encoded once for all the sidecars that call its destination port. It encodes to the
/// same bytes.
pub fn lower_sidecar_for_encoding<'m>(
    checked: &'m Checked,
    slicer: &mesh_policy::Slicer<'_>,
    tables: &TableCache<'m>,
    svc: &Service,
) -> Body<SharedTable<'m>> {
    lower_sidecar_as(checked, slicer, tables, svc, |c| SharedTable(c.clone()))
}

fn lower_sidecar_as<'m, T>(
    checked: &'m Checked,
    slicer: &mesh_policy::Slicer<'_>,
    tables: &TableCache<'m>,
    svc: &Service,
    hold: impl Fn(&std::sync::Arc<CachedTable<'m>>) -> T,
) -> Body<T> {
    let model = &checked.model;
    let mut l = Lowerer {
        model,
        shared: tables,
        sources: &checked.sources,
        clusters: BTreeMap::new(),
        used: None,
    };
    let sidecar = sidecar_info(model, svc);
    let mut destinations = Vec::new();
    for dest in egress_of(model, svc) {
        let mut ports = Vec::new();
        let mut all_routes: Vec<&Route> = Vec::new();
        for sp in &dest.ports {
            let (routes, consumer) = routes_and_consumer(model, &svc.namespace, dest, sp.port);
            let default_cluster = l.cluster(dest, sp.port, None);
            let table = if routes.is_empty() {
                None
            } else {
                let key = TableKey {
                    namespace: dest.namespace.clone(),
                    name: dest.name.clone(),
                    port: sp.port,
                    consumer_ns: consumer.then(|| svc.namespace.clone()),
                };
                let cached = match tables.get(&key) {
                    Some(c) => {
                        // Lowering the table also adds the clusters it names; replay that.
                        for (s, port, version) in &c.clusters {
                            let k = cluster_key(&s.key(), *port, version.as_deref());
                            l.add_cluster(s, *port, version.as_deref(), &k);
                        }
                        c
                    }
                    None => {
                        l.used = Some(Vec::new());
                        let table = l.table(&routes);
                        let mut clusters = l.used.take().unwrap_or_default();
                        clusters.sort_by(|a, b| {
                            (&a.0.namespace, &a.0.name, a.1, &a.2).cmp(&(
                                &b.0.namespace,
                                &b.0.name,
                                b.1,
                                &b.2,
                            ))
                        });
                        clusters.dedup_by(|a, b| {
                            a.0.namespace == b.0.namespace
                                && a.0.name == b.0.name
                                && a.1 == b.1
                                && a.2 == b.2
                        });
                        let c = std::sync::Arc::new(CachedTable {
                            table,
                            clusters,
                            encoded: std::sync::OnceLock::new(),
                        });
                        tables.put(key, c.clone());
                        c
                    }
                };
                Some(hold(&cached))
            };
            all_routes.extend(routes.iter().copied());
            ports.push(DestinationPort {
                port: sp.port,
                protocol: sp.protocol,
                routes: table,
                default_cluster,
            });
        }
        ports.sort_by_key(|p| p.port);
        destinations.push(Destination {
            service: dest.key(),
            hosts: hosts_for(dest, &svc.namespace, &all_routes),
            ports,
            encoded_slashes: encoded_slashes(model, dest),
        });
    }
    destinations.sort_by(|a, b| a.service.cmp(&b.service));
    Body {
        mesh: MeshInfo {
            name: model.mesh.name.clone(),
            trust_domain: model.mesh.trust_domain.clone(),
            mtls: model.mesh.mtls,
        },
        sidecar,
        destinations,
        clusters: l.clusters,
        authz: crate::policy::bundle_with(checked, slicer, svc),
    }
}

/// `sha256:` of the mesh definition: every input document's hash, sorted, so that moving
/// documents between files or reordering them does not change it.
pub fn source_hash(model: &Model) -> String {
    let mut hashes = model.document_hashes.clone();
    hashes.sort();
    mesh_artifact::codec::sha256_tag(hashes.join("\n").as_bytes())
}
