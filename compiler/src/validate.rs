//! Semantic checks on the model: references, duplicates, conflicts, and the route analysis
//! (identical and shadowed matches across every route attached to the same parent).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use mesh_artifact::{EncodedSlashes, PathError, PathMatch, RouteEntry, SourcePos, rank};

use crate::diag::{Code, Diagnostic, did_you_mean};
use crate::model::*;
use crate::source::Loc;

/// Run every semantic check. The checks of single resources and the route analysis only read
/// the model: they run side by side, and their diagnostics are joined in a fixed order.
pub fn validate(model: &Model) -> Vec<Diagnostic> {
    let passes: [fn(&mut Validator<'_>); 2] = [
        |v| {
            v.services();
            v.sidecars();
            v.routes();
            v.encoded_slash_matches();
            v.hostnames();
            v.width();
            v.app_ports();
        },
        |v| v.route_analysis(),
    ];
    crate::par::map(&passes, crate::par::cpus(), |pass| {
        let mut v = Validator {
            model,
            diags: Vec::new(),
        };
        pass(&mut v);
        v.diags
    })
    .into_iter()
    .flatten()
    .collect()
}

struct Validator<'m> {
    model: &'m Model,
    diags: Vec<Diagnostic>,
}

/// Destination entries over all artifacts above which [`Code::WideMesh`] warns: 500 services
/// that may each call all the others. Measured (black-box test, 2026-11-26): such a mesh builds
/// 143 MB of artifacts (about 570 bytes per entry), and the size grows with the square of the
/// number of services: 20,000 would need some 230 GB.
pub const WIDE_MESH_ENTRIES: usize = 250_000;

impl Validator<'_> {
    fn report(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// MC0510 for `Exact` and `PathPrefix` values holding `%2F` or `%5C` (the decoder judges
    /// every other value): such a value can match only where requests keep encoded slashes, on
    /// a route whose every parent Service's application says `encodedSlashes: keep`. It is then
    /// judged in that mode (`%2f` is still written `%2F` there); on any other route it never
    /// matches, since mesh-proxy answers such paths with 400 before routing.
    fn encoded_slash_matches(&mut self) {
        let model = self.model;
        for route in &model.routes {
            let mut parents = route.parents.iter().filter(|p| p.is_service()).peekable();
            let all_keep = parents.peek().is_some()
                && parents.all(|p| {
                    model.service(&p.namespace, &p.name).is_some_and(|svc| {
                        crate::lower::encoded_slashes(model, svc) == EncodedSlashes::Keep
                    })
                });
            let mode = if all_keep {
                EncodedSlashes::Keep
            } else {
                EncodedSlashes::Reject
            };
            for m in route.rules.iter().flat_map(|r| &r.matches) {
                let (PathMatch::Exact(value) | PathMatch::PathPrefix(value)) = &m.path.v else {
                    continue;
                };
                if mesh_artifact::normalize_path(value) != Err(PathError::EncodedSlash) {
                    continue;
                }
                if let Some(d) = crate::decode::unnormalized_path(value, m.path.loc, mode) {
                    self.report(d);
                }
            }
        }
    }

    /// Warn when a sidecar without a configured application port cannot forward as its Service
    /// says: a `targetPort` that names a container port has a number unknown here, and the
    /// sidecar forwards that port's requests to the first port's target (or the port's own
    /// number) instead.
    fn app_ports(&mut self) {
        let model = self.model;
        for svc in &model.services {
            if model
                .sidecar_for(&svc.namespace, &svc.name)
                .is_some_and(|sc| sc.app_port.is_some())
            {
                continue;
            }
            let Some(named) = svc.ports.iter().find_map(|p| p.target_name.as_ref()) else {
                continue;
            };
            let forwards_to = default_app_port(svc).unwrap_or(8080);
            self.report(
                Diagnostic::new(
                    Code::UncertainAppPort,
                    format!(
                        "the application port behind `targetPort: {}` of `{}` is unknown: it names a container port",
                        named.v,
                        svc.key()
                    ),
                )
                .at(named.loc, "a container port's name")
                .help(format!(
                    "its sidecar would forward these requests to port {forwards_to}; give the Service a numeric `targetPort`, or set `app: {{port: N}}` in a `Sidecar` for `{}`",
                    svc.name
                )),
            );
        }
    }

    /// Warn when the artifacts would carry very many destination entries: every sidecar with
    /// no `egress` lists every service.
    fn width(&mut self) {
        let model = self.model;
        let n = model.services.len();
        let mut open = 0usize;
        let mut entries = 0usize;
        for svc in &model.services {
            match model
                .sidecar_for(&svc.namespace, &svc.name)
                .and_then(|s| s.egress.as_ref())
            {
                None => {
                    open += 1;
                    entries = entries.saturating_add(n);
                }
                Some(_) => {
                    entries = entries.saturating_add(crate::lower::egress_of(model, svc).len());
                }
            }
        }
        if entries < WIDE_MESH_ENTRIES || open == 0 {
            return;
        }
        let at = model
            .mesh
            .loc
            .or_else(|| model.services.first().map(|s| s.loc));
        let mut d = Diagnostic::new(
            Code::WideMesh,
            format!(
                "{open} of {n} services have no `egress`: their sidecars carry all {n} services, {entries} destination entries in all"
            ),
        )
        .help(format!(
            "an artifact lists every service its sidecar may call, so the build grows with the square of the mesh (about 570 bytes per entry: {} MB here); give each `Sidecar` the `egress` its service really calls",
            entries.saturating_mul(570) / 1_000_000
        ));
        if let Some(loc) = at {
            d = d.at(loc, "every service may call every other");
        }
        self.report(d);
    }

    fn service_names_in(&self, ns: &str) -> Vec<&str> {
        self.model
            .services
            .iter()
            .filter(|s| s.namespace == ns)
            .map(|s| s.name.as_str())
            .collect()
    }

    fn namespace_exists(&self, ns: &str) -> bool {
        self.model.services.iter().any(|s| s.namespace == ns)
    }

    /// Report an unknown namespace or service; returns the service when it exists.
    fn resolve_service(
        &mut self,
        ns: &str,
        name: &str,
        loc: Loc,
        what: &str,
        code: Code,
    ) -> Option<&Service> {
        if let Some(s) = self.model.service(ns, name) {
            return Some(s);
        }
        if !self.namespace_exists(ns) {
            let namespaces = self.model.namespaces();
            let mut d = Diagnostic::new(
                Code::UnknownNamespace,
                format!("{what} `{ns}/{name}`: namespace `{ns}` has no services"),
            )
            .at(loc, format!("unknown namespace `{ns}`"));
            if let Some(h) = did_you_mean(ns, namespaces.iter().copied()) {
                d = d.help(h);
            }
            self.report(d);
            return None;
        }
        let names = self.service_names_in(ns);
        let mut d = Diagnostic::new(
            code,
            format!("{what} `{name}` does not exist in namespace `{ns}`"),
        )
        .at(loc, "unknown service");
        d = match did_you_mean(name, names.iter().copied()) {
            Some(h) => d.help(h),
            None => d.help(format!(
                "services in `{ns}`: {}",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        self.report(d);
        None
    }

    fn services(&mut self) {
        for s in &self.model.services {
            let mut by_port: HashMap<u16, Loc> = HashMap::new();
            // Port names used twice are reported by decoding, at the name.
            for p in &s.ports {
                if let Some(first) = by_port.insert(p.port, p.loc) {
                    self.diags.push(
                        Diagnostic::new(
                            Code::DuplicatePort,
                            format!("port {} is declared twice in service `{}`", p.port, s.key()),
                        )
                        .at(p.loc, "declared again")
                        .secondary(first, "first declared here"),
                    );
                }
            }
            if s.ports.len() > 1 && s.origin == Origin::Kubernetes {
                // Kubernetes requires names on multi-port services: report every unnamed port.
                for p in s.ports.iter().filter(|p| p.name.is_none()) {
                    self.diags.push(
                        Diagnostic::new(
                            Code::MissingField,
                            format!(
                                "port {} of multi-port service `{}` has no `name`",
                                p.port,
                                s.key()
                            ),
                        )
                        .at(p.loc, "`name` is required when a service has several ports"),
                    );
                }
            }
            let mut versions: HashMap<&str, Loc> = HashMap::new();
            for ver in &s.versions {
                if let Some(first) = versions.insert(&ver.name, ver.loc) {
                    self.diags.push(
                        Diagnostic::new(
                            Code::DuplicateResource,
                            format!(
                                "version `{}` is defined twice in service `{}`",
                                ver.name,
                                s.key()
                            ),
                        )
                        .at(ver.loc, "defined again")
                        .secondary(first, "first defined here"),
                    );
                }
            }
        }
    }

    fn sidecars(&mut self) {
        let mut seen: BTreeMap<(String, String), Loc> = BTreeMap::new();
        let model = self.model;
        for sc in &model.sidecars {
            if sc.service.v.is_empty() {
                continue;
            }
            let svc = self
                .resolve_service(
                    &sc.namespace,
                    &sc.service.v,
                    sc.service.loc,
                    "sidecar service",
                    Code::UnknownService,
                )
                .cloned();
            if let Some(first) =
                seen.insert((sc.namespace.clone(), sc.service.v.clone()), sc.service.loc)
            {
                self.report(
                    Diagnostic::new(
                        Code::DuplicateSidecar,
                        format!(
                            "service `{}/{}` has two sidecars",
                            sc.namespace, sc.service.v
                        ),
                    )
                    .at(sc.service.loc, "second sidecar for this service")
                    .secondary(first, "first sidecar here"),
                );
            }
            // Listener ports must differ from each other and from the application's port.
            let defaults = model.mesh.sidecar_ports;
            let app_port = sc
                .app_port
                .as_ref()
                .map(|p| p.v)
                .or_else(|| svc.as_ref().and_then(default_app_port));
            let ports = [
                (
                    "inbound",
                    sc.inbound_port.as_ref().map_or(defaults.inbound, |p| p.v),
                    sc.inbound_port.as_ref().map(|p| p.loc),
                ),
                (
                    "outbound",
                    sc.outbound_port.as_ref().map_or(defaults.outbound, |p| p.v),
                    sc.outbound_port.as_ref().map(|p| p.loc),
                ),
                (
                    "admin",
                    sc.admin_port.as_ref().map_or(defaults.admin, |p| p.v),
                    sc.admin_port.as_ref().map(|p| p.loc),
                ),
                (
                    "app",
                    app_port.unwrap_or(0),
                    sc.app_port.as_ref().map(|p| p.loc),
                ),
            ];
            for i in 0..ports.len() {
                for j in (i + 1)..ports.len() {
                    let (a, pa, la) = ports[i];
                    let (b, pb, lb) = ports[j];
                    if pa != 0 && pa == pb {
                        let loc = lb.or(la).unwrap_or(sc.loc);
                        self.report(
                            Diagnostic::new(Code::ListenerConflict, format!("sidecar `{}` uses port {pa} for both the {a} and the {b} listener", sc.name))
                                .at(loc, format!("port {pa} is already the {a} port"))
                                .help("every listener of a sidecar, and the application, needs its own port"),
                        );
                    }
                }
            }
            if let Some(egress) = &sc.egress {
                let mut seen_egress = BTreeSet::new();
                for e in egress {
                    if !seen_egress.insert((e.namespace.clone(), e.name.clone())) {
                        continue;
                    }
                    if e.name == "*" {
                        if !self.namespace_exists(&e.namespace) {
                            let namespaces = self.model.namespaces();
                            let mut d = Diagnostic::new(
                                Code::UnknownNamespace,
                                format!(
                                    "egress names namespace `{}`, which has no services",
                                    e.namespace
                                ),
                            )
                            .at(e.loc, "unknown namespace");
                            if let Some(h) = did_you_mean(&e.namespace, namespaces.iter().copied())
                            {
                                d = d.help(h);
                            }
                            self.report(d);
                        }
                        continue;
                    }
                    self.resolve_service(
                        &e.namespace,
                        &e.name,
                        e.loc,
                        "egress to service",
                        Code::UnknownEgress,
                    );
                }
            }
        }
    }

    fn routes(&mut self) {
        let model = self.model;
        for route in &model.routes {
            for p in &route.parents {
                if !p.is_service() {
                    let mut d = Diagnostic::new(
                        Code::ParentNotService,
                        format!("route `{}` has a parent of group `{}` kind `{}`, which is not a Service: it attaches to nothing in the mesh", route.key(), if p.group.is_empty() { "\"\"" } else { &p.group }, p.kind),
                    )
                    .at(p.loc, "not a mesh parent");
                    if model.service(&p.namespace, &p.name).is_some() && !p.group.is_empty() {
                        d = d.help(format!("`{}` is a Service: add `group: \"\"` and `kind: Service` to the parentRef (the group defaults to `gateway.networking.k8s.io`)", p.name));
                    } else {
                        d = d.help(
                            "mesh routes attach to a Service: `group: \"\"`, `kind: Service`",
                        );
                    }
                    self.report(d);
                    continue;
                }
                let Some(svc) = self
                    .resolve_service(
                        &p.namespace,
                        &p.name,
                        p.loc,
                        "route parent",
                        Code::UnknownService,
                    )
                    .cloned()
                else {
                    continue;
                };
                if let Some(port) = &p.port {
                    if !svc.ports.iter().any(|sp| sp.port == port.v) {
                        self.unknown_port(&svc, port.v, port.loc);
                    }
                }
            }
            for rule in &route.rules {
                self.rule(route, rule);
            }
        }
    }

    /// Route hostnames are extra names of the route's parent services (the router maps each to
    /// a destination), so a hostname must not be a name of another service, and two routes of
    /// different services must not declare the same hostname: either would send one service's
    /// traffic to another (MC0407).
    fn hostnames(&mut self) {
        let model = self.model;
        if model.routes.iter().all(|r| r.hostnames.is_empty()) {
            return;
        }
        // Every name under which a caller may address a service, lower case (as the router
        // compares hosts): `name.ns.svc.cluster.local`, `name.ns.svc`, `name.ns`, and the bare
        // `name`, which callers of the service's namespace use.
        let mut names: HashMap<String, Vec<&Service>> = HashMap::new();
        for s in &model.services {
            let name = s.name.to_ascii_lowercase();
            let ns = s.namespace.to_ascii_lowercase();
            for n in [
                format!("{name}.{ns}.svc.{CLUSTER_DOMAIN}"),
                format!("{name}.{ns}.svc"),
                format!("{name}.{ns}"),
                name,
            ] {
                names.entry(n).or_default().push(s);
            }
        }
        // Hostname -> the earlier declarations: (parent service, callers it applies to (`None`:
        // all, `Some(ns)`: a consumer route's namespace), route, place).
        type Declared<'m> = (String, Option<&'m str>, &'m Route, Loc);
        let mut declared: HashMap<&str, Vec<Declared<'_>>> = HashMap::new();
        for route in &model.routes {
            let parents: Vec<&ParentRef> =
                route.parents.iter().filter(|p| p.is_service()).collect();
            if parents.is_empty() {
                continue;
            }
            let is_parent = |s: &Service| {
                parents
                    .iter()
                    .any(|p| p.namespace == s.namespace && p.name == s.name)
            };
            for h in &route.hostnames {
                if h.v.starts_with("*.") {
                    // Wildcards name no destination.
                    continue;
                }
                let host = h.v.to_ascii_lowercase();
                if let Some(other) = names
                    .get(&host)
                    .and_then(|list| list.iter().find(|s| !is_parent(s)))
                {
                    let bare = !host.contains('.');
                    let why = if bare && other.namespace != route.namespace {
                        format!(
                            "callers in namespace `{}` address service `{}` as `{host}`",
                            other.namespace,
                            other.key()
                        )
                    } else {
                        format!("`{host}` is a name of service `{}`", other.key())
                    };
                    self.report(
                        Diagnostic::new(
                            Code::HostnameConflict,
                            format!(
                                "hostname `{host}` of route `{}` is the name of service `{}`",
                                route.key(),
                                other.key()
                            ),
                        )
                        .at(h.loc, format!("shadows service `{}`", other.key()))
                        .help(format!(
                            "{why}; as a hostname of this route it would send those requests to `{}`: remove it, or use a hostname that names no service",
                            parent_list(&parents)
                        )),
                    );
                    continue;
                }
                let earlier = declared.entry(h.v.as_str()).or_default();
                let mut reported = false;
                for p in &parents {
                    let svc = format!("{}/{}", p.namespace, p.name);
                    let scope =
                        (route.namespace != p.namespace).then_some(route.namespace.as_str());
                    let clash = earlier.iter().find(|(s, sc, _, _)| {
                        *s != svc && (sc.is_none() || scope.is_none() || *sc == scope)
                    });
                    if let (Some((first_svc, _, first_route, first_loc)), false) = (clash, reported)
                    {
                        reported = true;
                        let d = Diagnostic::new(
                            Code::HostnameConflict,
                            format!("hostname `{host}` is declared for services `{first_svc}` and `{svc}`"),
                        )
                        .at(h.loc, format!("declared again for `{svc}`"))
                        .secondary(*first_loc, format!("first declared for `{first_svc}`"));
                        let d = if std::ptr::eq(*first_route, route) {
                            d.help(format!("route `{}` attaches to both services: a hostname names one destination; move it to a route of one service", route.key()))
                        } else {
                            d.help(format!("route `{}` declared `{host}` first, for service `{first_svc}`: a hostname names one destination; remove it from one of the routes", first_route.key()))
                        };
                        self.report(d);
                    }
                    earlier.push((svc, scope, route, h.loc));
                }
            }
        }
    }

    fn unknown_port(&mut self, svc: &Service, port: u16, loc: Loc) {
        let ports: Vec<String> = svc.ports.iter().map(|p| p.port.to_string()).collect();
        self.report(
            Diagnostic::new(
                Code::UnknownPort,
                format!("service `{}` has no port {port}", svc.key()),
            )
            .at(loc, "unknown port")
            .help(format!("ports of `{}`: {}", svc.key(), ports.join(", "))),
        );
    }

    /// With `referenceGrants: required` in the `Mesh`: a backend in another namespace than its
    /// route's needs a `ReferenceGrant` in the backend's namespace that lets the route's kind,
    /// from the route's namespace, refer to that Service (MC0308). A backend that is one of the
    /// route's own Service parents needs none: the route sends that Service's traffic where it
    /// was addressed (a consumer route tuning its calls to another namespace's Service), and
    /// attaching to a Service of another namespace needs no grant.
    fn reference_permitted(&mut self, route: &Route, b: &BackendRef) {
        if b.namespace == route.namespace {
            return;
        }
        let own_parent = route
            .parents
            .iter()
            .any(|p| p.is_service() && p.namespace == b.namespace && p.name == b.name);
        if own_parent {
            return;
        }
        let (group, kind) = route.group_kind();
        let grants = self.model.grants_in(&b.namespace);
        if grants
            .iter()
            .any(|g| g.permits(group, kind, &route.namespace, &b.name))
        {
            return;
        }
        let mut d = Diagnostic::new(
            Code::RefNotPermitted,
            format!(
                "backend `{}/{}` of route `{}` is in another namespace, and no `ReferenceGrant` there allows it",
                b.namespace,
                b.name,
                route.key()
            ),
        )
        .at(
            b.namespace_loc.unwrap_or(b.loc),
            format!("not granted to `{kind}`s of `{}`", route.namespace),
        );
        let closest = closest_grant(grants, group, kind, &route.namespace, &b.name)
            .or_else(|| misplaced_grant(self.model, route, b));
        if let Some((loc, why)) = closest {
            d = d.secondary(loc, why);
        }
        d = d.help(format!(
            "the `Mesh` sets `referenceGrants: required`: namespace `{ns}` must allow this reference, with a grant such as\n\
             apiVersion: gateway.networking.k8s.io/v1beta1\n\
             kind: ReferenceGrant\n\
             metadata: {{name: {lower}-from-{from}, namespace: {ns}}}\n\
             spec:\n  \
             from: [{{group: {group}, kind: {kind}, namespace: {from}}}]\n  \
             to: [{{group: \"\", kind: Service, name: {name}}}]",
            ns = b.namespace,
            lower = kind.to_ascii_lowercase(),
            from = route.namespace,
            name = b.name,
        ));
        self.report(d);
    }

    fn rule(&mut self, route: &Route, rule: &Rule) {
        for b in &rule.backends {
            if !(b.group.is_empty() && b.kind == "Service") {
                self.report(
                    Diagnostic::new(
                        Code::InvalidValue,
                        format!(
                            "backend `{}` has group `{}` kind `{}`: mesh backends are Services",
                            b.name, b.group, b.kind
                        ),
                    )
                    .at(b.loc, "not a Service")
                    .help("use `kind: Service` with the core group (`group: \"\"` or omitted)"),
                );
                continue;
            }
            let Some(svc) = self
                .resolve_service(
                    &b.namespace,
                    &b.name,
                    b.loc,
                    "backend",
                    Code::UnknownService,
                )
                .cloned()
            else {
                continue;
            };
            if self.model.mesh.reference_grants_required {
                self.reference_permitted(route, b);
            }
            match &b.port {
                Some(p) if !svc.ports.iter().any(|sp| sp.port == p.v) => {
                    self.unknown_port(&svc, p.v, p.loc);
                }
                Some(_) => {}
                None if svc.ports.len() > 1 => {
                    let ports: Vec<String> = svc.ports.iter().map(|p| p.port.to_string()).collect();
                    self.report(
                        Diagnostic::new(
                            Code::PortRequired,
                            format!("backend `{}` has several ports; name one", svc.key()),
                        )
                        .at(b.loc, "no `port`")
                        .help(format!("add `port:` with one of {}", ports.join(", "))),
                    );
                }
                None => {}
            }
            if let Some(v) = &b.version {
                if !svc.versions.iter().any(|x| x.name == v.v) {
                    // A version defined twice (MC0401) is listed once.
                    let mut names: Vec<&str> = Vec::with_capacity(svc.versions.len());
                    for x in &svc.versions {
                        if !names.contains(&x.name.as_str()) {
                            names.push(&x.name);
                        }
                    }
                    let mut d = Diagnostic::new(
                        Code::UnknownVersion,
                        format!("service `{}` has no version `{}`", svc.key(), v.v),
                    )
                    .at(v.loc, "unknown version");
                    d = match did_you_mean(&v.v, names.iter().copied()) {
                        Some(h) => d.help(h),
                        None if names.is_empty() => {
                            d.help(format!("`{}` defines no `versions`", svc.key()))
                        }
                        None => d.help(format!(
                            "versions: {}",
                            names
                                .iter()
                                .map(|n| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    };
                    self.report(d);
                }
            }
        }
        if !rule.backends.is_empty() && rule.backends.iter().all(|b| b.weight == 0) {
            self.report(
                Diagnostic::new(
                    Code::ZeroWeights,
                    format!(
                        "every backend of this rule of route `{}` has weight 0",
                        route.key()
                    ),
                )
                .at(
                    rule.loc,
                    "this rule answers 500 to every request it matches",
                )
                .help("give at least one backend a positive weight, or remove the rule"),
            );
        }
        let has_redirect = rule
            .filters
            .iter()
            .any(|f| matches!(f.kind, FilterKind::Redirect(_)));
        if rule.backends.is_empty() && !has_redirect && !rule.incomplete {
            self.report(
                Diagnostic::new(
                    Code::NoBackends,
                    format!(
                        "a rule of route `{}` has no `backendRefs` and no redirect",
                        route.key()
                    ),
                )
                .at(
                    rule.loc,
                    "this rule answers 500 to every request it matches",
                )
                .help("add `backendRefs`, or a `RequestRedirect` filter"),
            );
        }
        // Filter combinations (Gateway API CEL rules).
        let mut seen: HashMap<&'static str, Loc> = HashMap::new();
        for f in &rule.filters {
            let name = match &f.kind {
                FilterKind::RequestHeaders(_) => "RequestHeaderModifier",
                FilterKind::ResponseHeaders(_) => "ResponseHeaderModifier",
                FilterKind::Redirect(_) => "RequestRedirect",
                FilterKind::Rewrite(_) => "URLRewrite",
                FilterKind::Unsupported(_) => continue,
            };
            if let Some(first) = seen.insert(name, f.loc) {
                self.report(
                    Diagnostic::new(
                        Code::ConflictingFilters,
                        format!("filter `{name}` appears twice in one rule"),
                    )
                    .at(f.loc, "repeated filter")
                    .secondary(first, "first here")
                    .help("Gateway API allows each of these filters once per rule; merge them"),
                );
            }
        }
        if let (Some(r), Some(w)) = (seen.get("RequestRedirect"), seen.get("URLRewrite")) {
            self.report(
                Diagnostic::new(
                    Code::ConflictingFilters,
                    "a rule cannot both redirect and rewrite",
                )
                .at(*w, "`URLRewrite` here")
                .secondary(*r, "`RequestRedirect` here")
                .help("a redirect answers the client directly; drop one of the two filters"),
            );
        }
        for f in &rule.filters {
            let prefix_mod = match &f.kind {
                FilterKind::Redirect(r) => matches!(
                    r.path,
                    Some(mesh_artifact::PathModifier::ReplacePrefixMatch(_))
                ),
                FilterKind::Rewrite(r) => matches!(
                    r.path,
                    Some(mesh_artifact::PathModifier::ReplacePrefixMatch(_))
                ),
                _ => false,
            };
            // A lone match that had an error may have been the `PathPrefix` one.
            let unknown = rule.matches.len() == 1 && rule.matches.iter().any(|m| m.broken);
            let single_prefix = rule.matches.len() <= 1
                && rule
                    .matches
                    .first()
                    .is_none_or(|m| matches!(m.path.v, PathMatch::PathPrefix(_)));
            if prefix_mod && !single_prefix && !unknown {
                self.report(
                    Diagnostic::new(Code::PrefixRewriteWithoutPrefix, "`ReplacePrefixMatch` needs exactly one `PathPrefix` match in its rule")
                        .at(f.loc, "`ReplacePrefixMatch` here")
                        .help("split the rule so that each has one `PathPrefix` match, or use `ReplaceFullPath`"),
                );
            }
        }
        // `0s` disables a timeout (Gateway API), so only two non-zero timeouts compare. Without
        // its own `request` timeout the rule gets the mesh's default, as lowering does.
        if let Some(per_try) = &rule.timeouts.backend_request {
            let mesh = &self.model.mesh;
            let request = match &rule.timeouts.request {
                Some(req) => Some((req.v, Some(req.loc))),
                None => mesh.default_request_timeout_ms.map(|ms| (ms, None)),
            };
            if let Some((req, req_loc)) = request {
                if req > 0 && per_try.v > 0 && per_try.v > req {
                    let mut d = Diagnostic::new(Code::PerTryTimeoutTooLong, format!("`backendRequest` timeout ({}) is longer than the `request` timeout ({})", fmt_ms(per_try.v), fmt_ms(req)))
                        .at(per_try.loc, "per-try timeout");
                    d = match req_loc {
                        Some(loc) => d.secondary(loc, "whole-request timeout").help("each attempt must fit within the whole request: make `backendRequest` at most `request` (`0s` disables either)"),
                        None => d.help(format!("the rule sets no `request` timeout, so the default of `Mesh` `{}` (`spec.defaults.timeouts.request`) applies: make `backendRequest` at most that, or give the rule its own `request` timeout (`0s` disables it)", mesh.name)),
                    };
                    self.report(d);
                }
            }
        }
        if let Some(retry) = &rule.retry {
            if retry.attempts > 0
                && retry.budget.is_none()
                && self.model.mesh.default_retry_budget.is_none()
            {
                self.report(
                    Diagnostic::new(Code::RetryWithoutBudget, format!("retry policy of route `{}` has no retry budget", route.key()))
                        .at(retry.loc, "retries without a budget")
                        .help("unbounded retries multiply load during an outage: add `budget` (in a `MeshRoute`) or `spec.defaults.retryBudget` in the `Mesh`"),
                );
            }
        }
    }

    fn route_analysis(&mut self) {
        let mut reported: BTreeSet<(String, u32, u32)> = BTreeSet::new();
        for group in attachment_groups(self.model) {
            let mut entries: Vec<(mesh_artifact::rank::PrecedenceKey, Candidate<'_>)> = group
                .routes
                .iter()
                .flat_map(|r| candidates(r))
                // A match that had an error matches nothing known: it neither shadows nor is
                // shadowed (the error is reported already).
                .filter(|c| !c.broken)
                .map(|c| {
                    (
                        rank::precedence_key(&c.entry, c.route.creation_timestamp.as_deref()),
                        c,
                    )
                })
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            // Index earlier entries by path, so each entry only compares with those that can
            // cover its path (exact: same path; prefix: a segment ancestor).
            let mut exact: HashMap<&str, Vec<usize>> = HashMap::new();
            let mut prefix: HashMap<&str, Vec<usize>> = HashMap::new();
            let mut others: Vec<usize> = Vec::new();
            for i in 0..entries.len() {
                let e = &entries[i].1;
                let mut cands: Vec<usize> = Vec::new();
                let path = match &e.entry.path {
                    PathMatch::Exact(p) | PathMatch::PathPrefix(p) => Some(p.as_str()),
                    PathMatch::RegularExpression(_) => None,
                };
                if let Some(p) = path {
                    if matches!(e.entry.path, PathMatch::Exact(_)) {
                        cands.extend(exact.get(p).into_iter().flatten());
                    }
                    let trimmed = p.trim_end_matches('/');
                    cands.extend(prefix.get(trimmed).into_iter().flatten());
                    for (pos, _) in trimmed.rmatch_indices('/') {
                        cands.extend(prefix.get(&trimmed[..pos]).into_iter().flatten());
                    }
                } else {
                    cands.extend(others.iter());
                    cands.extend(prefix.get("").into_iter().flatten());
                }
                cands.sort_unstable();
                for &h in &cands {
                    let hi = &entries[h].1;
                    let same_route =
                        hi.route.namespace == e.route.namespace && hi.route.name == e.route.name;
                    if same_route && hi.entry.rule == e.entry.rule {
                        continue;
                    }
                    // A route whose `creationTimestamp` is invalid has no known age: its
                    // precedence against other routes is unknown.
                    if !same_route && (unknown_age(hi.route) || unknown_age(e.route)) {
                        continue;
                    }
                    if !covers(&hi.entry, &e.entry) {
                        continue;
                    }
                    let id = (e.route.key(), e.entry.rule, e.entry.r#match);
                    if !reported.insert(id) {
                        break;
                    }
                    let identical =
                        covers(&e.entry, &hi.entry) && rank::same_specificity(&hi.entry, &e.entry);
                    let why = match (&hi.route.creation_timestamp, &e.route.creation_timestamp) {
                        _ if same_route => "it comes first in the same route".to_string(),
                        (Some(a), Some(b)) if a != b => {
                            format!("route `{}` is older", hi.route.key())
                        }
                        (Some(_), None) => format!(
                            "route `{}` has a creation timestamp and this one does not",
                            hi.route.key()
                        ),
                        _ => format!("`{}` sorts before `{}`", hi.route.key(), e.route.key()),
                    };
                    let d = if identical && !same_route {
                        Diagnostic::new(
                            Code::DuplicateMatch,
                            format!(
                                "routes `{}` and `{}` have identical matches on `{}`",
                                hi.route.key(),
                                e.route.key(),
                                group.parent
                            ),
                        )
                        .at(e.loc, "this match never wins")
                        .secondary(
                            hi.loc,
                            format!(
                                "identical match in rule {} of `{}` wins",
                                hi.entry.rule,
                                hi.route.key()
                            ),
                        )
                        .help(format!(
                            "{why}; remove one of the two, or make the matches differ"
                        ))
                    } else {
                        Diagnostic::new(
                            Code::ShadowedMatch,
                            format!("rule {} match {} of route `{}` can never be selected on `{}`", e.entry.rule, e.entry.r#match, e.route.key(), group.parent),
                        )
                        .at(e.loc, "unreachable match")
                        .secondary(hi.loc, format!("rule {} of `{}` matches every request this one does, with higher precedence", hi.entry.rule, hi.route.key()))
                        .help(format!("Gateway API precedence picks the other rule ({why}); make this match more specific or remove it"))
                    };
                    self.report(d);
                    break;
                }
                match &e.entry.path {
                    PathMatch::Exact(p) => exact.entry(p.as_str()).or_default().push(i),
                    PathMatch::PathPrefix(p) => {
                        prefix.entry(p.trim_end_matches('/')).or_default().push(i)
                    }
                    PathMatch::RegularExpression(_) => others.push(i),
                }
            }
        }
    }
}

/// The grant of a namespace that comes closest to letting `group`/`kind` of `from_ns` refer to
/// the Service `service`, as the place that falls short and why: one whose `from` fits but
/// whose `to` names other Services, else one for that kind from another namespace, else one for
/// another kind from that namespace.
fn closest_grant(
    grants: &[ReferenceGrant],
    group: &str,
    kind: &str,
    from_ns: &str,
    service: &str,
) -> Option<(Loc, String)> {
    let fits = |f: &GrantFrom| f.group == group && f.kind == kind && f.namespace.v == from_ns;
    if let Some(g) = grants.iter().find(|g| g.from.iter().any(fits)) {
        let named = g.to.iter().find_map(|t| {
            let name = t.name.as_ref()?;
            (t.group.is_empty() && t.kind == "Service").then_some(name)
        });
        return Some(match named {
            Some(name) => (
                name.loc,
                format!(
                    "grant `{}` allows Service `{}`, not `{service}`",
                    g.key(),
                    name.v
                ),
            ),
            None => (
                g.loc,
                format!(
                    "grant `{}` allows `{kind}`s of `{from_ns}`, but no `Service`",
                    g.key()
                ),
            ),
        });
    }
    let other_ns = grants.iter().find_map(|g| {
        let f = g.from.iter().find(|f| f.group == group && f.kind == kind)?;
        Some((
            f.namespace.loc,
            format!(
                "grant `{}` allows `{kind}`s of `{}`, not `{from_ns}`",
                g.key(),
                f.namespace.v
            ),
        ))
    });
    other_ns.or_else(|| {
        grants.iter().find_map(|g| {
            let f = g.from.iter().find(|f| f.namespace.v == from_ns)?;
            let what = if f.group.is_empty() {
                format!("`{}`", f.kind)
            } else {
                format!("`{}` of `{}`", f.kind, f.group)
            };
            Some((
                f.loc,
                format!(
                    "grant `{}` allows {what}, not `{kind}` of `{group}`",
                    g.key()
                ),
            ))
        })
    })
}

/// A grant written in the route's own namespace for this reference (its `from` names the
/// route's namespace, which needs no grant, or its `to` names the backend, which is no Service
/// of that namespace): grants count only in the namespace they open.
fn misplaced_grant(model: &Model, route: &Route, b: &BackendRef) -> Option<(Loc, String)> {
    let names_backend = model.service(&route.namespace, &b.name).is_none();
    let g = model.grants_in(&route.namespace).iter().find(|g| {
        g.from.iter().any(|f| f.namespace.v == route.namespace)
            || (names_backend
                && g.to
                    .iter()
                    .any(|t| t.name.as_ref().is_some_and(|n| n.v == b.name)))
    })?;
    Some((
        g.loc,
        format!(
            "grant `{}` is in the route's namespace; a grant opens only its own namespace, here `{}`",
            g.key(),
            b.namespace
        ),
    ))
}

/// The cluster DNS domain in the service names callers use (`name.ns.svc.cluster.local`).
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// `` `a/b` `` or `` `a/b`, `c/d` `` for a route's Service parents.
fn parent_list(parents: &[&ParentRef]) -> String {
    let mut keys: Vec<String> = parents
        .iter()
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect();
    keys.dedup();
    keys.join("`, `")
}

fn fmt_ms(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// The application port a sidecar forwards to when none is configured: the first service
/// port's `targetPort`, else its `port`.
pub fn default_app_port(svc: &Service) -> Option<u16> {
    svc.ports.first().map(|p| p.target_port.unwrap_or(p.port))
}

/// Routes that apply to one caller scope on one service port.
pub struct Group<'m> {
    /// `namespace/name:port`, and the consumer namespace when not producer routes.
    pub parent: String,
    pub routes: Vec<&'m Route>,
}

/// For every service port: the producer routes, and per consumer namespace its consumer routes.
pub fn attachment_groups(model: &Model) -> Vec<Group<'_>> {
    let mut groups: BTreeMap<(String, u16, Option<String>), Vec<&Route>> = BTreeMap::new();
    for route in &model.routes {
        for p in route.parents.iter().filter(|p| p.is_service()) {
            let Some(svc) = model.service(&p.namespace, &p.name) else {
                continue;
            };
            let consumer = (route.namespace != svc.namespace).then(|| route.namespace.clone());
            for sp in &svc.ports {
                if p.port.as_ref().is_some_and(|x| x.v != sp.port) {
                    continue;
                }
                let list = groups
                    .entry((svc.key(), sp.port, consumer.clone()))
                    .or_default();
                if !list.iter().any(|r| std::ptr::eq(*r, route)) {
                    list.push(route);
                }
            }
        }
    }
    groups
        .into_iter()
        .map(|((svc, port, consumer), routes)| Group {
            parent: match consumer {
                Some(ns) => format!("{svc}:{port} (for callers in `{ns}`)"),
                None => format!("{svc}:{port}"),
            },
            routes,
        })
        .collect()
}

/// Whether the route's `creationTimestamp` was given but is invalid.
fn unknown_age(route: &Route) -> bool {
    route.unknown_age
}

/// One match of one rule, as a precedence-ranked entry.
pub struct Candidate<'m> {
    pub route: &'m Route,
    pub entry: RouteEntry,
    pub loc: Loc,
    /// The match had an error ([`crate::decode::broken_match`]).
    pub broken: bool,
}

/// Every match entry of a route (a rule without matches counts as `PathPrefix: /`).
pub fn candidates(route: &Route) -> Vec<Candidate<'_>> {
    let mut out = Vec::new();
    for (ri, rule) in route.rules.iter().enumerate() {
        let ri = u32::try_from(ri).unwrap_or(u32::MAX);
        if rule.matches.is_empty() {
            out.push(Candidate {
                route,
                entry: entry_of(route, ri, 0, None),
                loc: rule.loc,
                broken: false,
            });
        }
        for (mi, m) in rule.matches.iter().enumerate() {
            let mi = u32::try_from(mi).unwrap_or(u32::MAX);
            out.push(Candidate {
                route,
                entry: entry_of(route, ri, mi, Some(m)),
                loc: m.loc,
                broken: m.broken,
            });
        }
    }
    out
}

fn entry_of(route: &Route, rule: u32, m: u32, mt: Option<&Match>) -> RouteEntry {
    let conv = |v: &S<ValueMatch>| mesh_artifact::ValueMatch {
        name: v.v.name.clone(),
        kind: v.v.kind,
        value: v.v.value.clone(),
    };
    let mut headers: Vec<_> = mt
        .map(|m| m.headers.iter().map(conv).collect())
        .unwrap_or_default();
    let mut query: Vec<_> = mt
        .map(|m| m.query.iter().map(conv).collect())
        .unwrap_or_default();
    headers.sort_by(|a: &mesh_artifact::ValueMatch, b| a.name.cmp(&b.name));
    query.sort_by(|a: &mesh_artifact::ValueMatch, b| a.name.cmp(&b.name));
    RouteEntry {
        route: route.key(),
        rule,
        r#match: m,
        source: SourcePos {
            file: String::new(),
            line: 0,
            column: 0,
        },
        path: mt.map_or(PathMatch::PathPrefix("/".to_string()), |m| m.path.v.clone()),
        method: mt.and_then(|m| m.method.as_ref().map(|x| x.v.clone())),
        headers,
        query,
        action: 0,
    }
}

/// Whether every request that matches `b` also matches `a` (a sound, incomplete check: regex
/// paths and values only cover when textually identical).
pub fn covers(a: &RouteEntry, b: &RouteEntry) -> bool {
    let path = match (&a.path, &b.path) {
        (PathMatch::Exact(x), PathMatch::Exact(y)) => x == y,
        (PathMatch::PathPrefix(x), PathMatch::Exact(y)) => {
            mesh_artifact::matcher::prefix_matches(x, y)
        }
        (PathMatch::PathPrefix(x), PathMatch::PathPrefix(y)) => {
            mesh_artifact::matcher::prefix_matches(x, y.trim_end_matches('/'))
                || x.trim_end_matches('/').is_empty()
        }
        (PathMatch::PathPrefix(x), PathMatch::RegularExpression(_)) => {
            x.trim_end_matches('/').is_empty()
        }
        (PathMatch::RegularExpression(x), PathMatch::RegularExpression(y)) => x == y,
        _ => false,
    };
    if !path {
        return false;
    }
    if let Some(m) = &a.method {
        if b.method.as_ref() != Some(m) {
            return false;
        }
    }
    let subset = |xs: &[mesh_artifact::ValueMatch], ys: &[mesh_artifact::ValueMatch], ci: bool| {
        xs.iter().all(|x| {
            ys.iter().any(|y| {
                (if ci {
                    x.name.eq_ignore_ascii_case(&y.name)
                } else {
                    x.name == y.name
                }) && x.kind == y.kind
                    && x.value == y.value
            })
        })
    };
    subset(&a.headers, &b.headers, true) && subset(&a.query, &b.query, false)
}
