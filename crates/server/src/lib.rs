//! tiercare-server: the HTTP face of tiercare. JSON API under `/api/v1`, its OpenAPI
//! document, authentication, role checks, the access rule and the access log.
//!
//! Architecture invariant: this is the only crate that knows HTTP. Handlers translate
//! between JSON and domain types and call the [`Store`]; rules live in `tiercare-domain`.
//! Identity numbers and names are never logged: the request log records the route
//! template (`/api/v1/patients/{id}`), never the raw URI or a body.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use tiercare_domain::billing::{CatalogueSet, DEFAULT_CATALOGUE_TOML};
use tiercare_domain::settlement::{DEFAULT_POLICY_TOML, PolicySet};
use tiercare_store::Store;

pub mod auth;
pub mod bulk;
mod cache;
pub mod error;
pub mod extract;
mod fhir;
pub mod openapi;
mod routes;
pub mod sweeper;
mod web;

pub use routes::validate_user;

pub use error::ApiError;

/// Settings of a running server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Lifetime of a login session.
    pub session_ttl: Duration,
    /// Largest accepted request body, bytes.
    pub max_body_bytes: usize,
    /// Failed logins per user name (and per client address) within `login_window`
    /// before further attempts are refused with 429.
    pub login_max_failures: u32,
    pub login_window: Duration,
    /// How often the deadline sweeper runs (referral expiry, green-channel escalation);
    /// zero turns the background sweeper off (tests drive it themselves).
    pub sweep_interval: Duration,
    /// Settlement policy file (TOML, the form of the shipped default); `None`: the default
    /// policy set embedded in the binary.
    pub policy_file: Option<std::path::PathBuf>,
    /// Catalogue file of the places of treatment (TOML); `None`: the embedded samples.
    pub catalogue_file: Option<std::path::PathBuf>,
    /// This server's province (`510000`), for the clearing report's inbound/outbound;
    /// `None`: the province of the first community.
    pub home_province: Option<String>,
    /// Where bulk jobs (`$export`, `$import`) write their files; `None`: a directory of this
    /// process under the system's temporary directory.
    pub bulk_dir: Option<std::path::PathBuf>,
    /// The only directory whose files `$import` may name (`None`: only uploaded NDJSON).
    pub import_dir: Option<std::path::PathBuf>,
    /// Largest NDJSON body `POST /fhir/$import` accepts, bytes (streamed to disk, not held).
    pub max_import_bytes: u64,
    /// The region's recognition catalogue (issue 5; TOML, the form of
    /// crates/domain/data/recognition-default.toml); `None`: the embedded sample.
    pub recognition_file: Option<std::path::PathBuf>,
    /// How long a finished bulk job's files are kept (issue 7; default 24 h), then removed
    /// by the sweeper or on access, its status answering 404 (expired).
    pub bulk_retention: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            session_ttl: Duration::from_secs(12 * 3600),
            max_body_bytes: 1024 * 1024,
            login_max_failures: 5,
            login_window: Duration::from_secs(300),
            sweep_interval: Duration::from_secs(15),
            policy_file: None,
            catalogue_file: None,
            home_province: None,
            bulk_dir: None,
            import_dir: None,
            max_import_bytes: 1 << 30,
            recognition_file: None,
            bulk_retention: Duration::from_secs(24 * 3600),
        }
    }
}

/// The time as the server sees it. Rules that depend on deadlines (referral expiry,
/// green-channel escalation) read it here, so tests can move it.
pub type Clock = Arc<dyn Fn() -> time::OffsetDateTime + Send + Sync>;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<ServerConfig>,
    pub login_limiter: Arc<auth::LoginLimiter>,
    pub clock: Clock,
    pub(crate) cache: Arc<cache::Caches>,
    /// The bulk jobs of this process (issue 7).
    pub(crate) bulk: Arc<bulk::jobs::Jobs>,
    /// The settlement policies in force (loaded at start).
    pub policies: Arc<PolicySet>,
    /// The catalogues of the places of treatment (loaded at start).
    pub catalogues: Arc<CatalogueSet>,
    /// Where the policies came from: `default` or the file path.
    pub policy_source: Arc<str>,
    /// The recognition configuration in force (issue 5: items, validity windows,
    /// agreements; loaded at start).
    pub recognition: Arc<tiercare_domain::recognition::RecognitionConfig>,
}

/// The settlement policies and catalogues of `config`: the files given, else the embedded
/// defaults. An unreadable or invalid file is an error naming the file and each problem.
pub fn load_settlement_rules(config: &ServerConfig) -> Result<(PolicySet, CatalogueSet, String), String> {
    let read =
        |p: &std::path::Path| std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let (policies, source) = match &config.policy_file {
        None => {
            (PolicySet::load_toml(DEFAULT_POLICY_TOML).map_err(|e| format!("embedded policy: {e}"))?, "default".into())
        }
        Some(p) => (
            PolicySet::load_toml(&read(p)?).map_err(|e| format!("policy file {}: {e}", p.display()))?,
            p.display().to_string(),
        ),
    };
    let catalogues = match &config.catalogue_file {
        None => CatalogueSet::load_toml(DEFAULT_CATALOGUE_TOML).map_err(|e| format!("embedded catalogue: {e}"))?,
        Some(p) => CatalogueSet::load_toml(&read(p)?).map_err(|e| format!("catalogue file {}: {e}", p.display()))?,
    };
    Ok((policies, catalogues, source))
}

impl AppState {
    /// The state of a server, with the settlement rules of `config` loaded. When a file
    /// given there cannot be loaded the error is logged and no policy is in force (every
    /// settlement is refused): use [`AppState::try_new`] to stop at start instead.
    pub fn new(store: Arc<dyn Store>, config: ServerConfig) -> Self {
        match Self::try_new(store.clone(), config.clone()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "settlement rules not loaded; no settlement policy is in force");
                Self::with_rules(store, config, PolicySet::default(), CatalogueSet::default(), "none".into())
            }
        }
    }

    /// As [`AppState::new`], but a policy or catalogue file that cannot be loaded is an error.
    pub fn try_new(store: Arc<dyn Store>, config: ServerConfig) -> Result<Self, String> {
        let (policies, catalogues, source) = load_settlement_rules(&config)?;
        let recognition = routes::results::load_recognition(&config)?;
        let mut state = Self::with_rules(store, config, policies, catalogues, source);
        state.recognition = Arc::new(recognition);
        Ok(state)
    }

    fn with_rules(
        store: Arc<dyn Store>,
        config: ServerConfig,
        policies: PolicySet,
        catalogues: CatalogueSet,
        source: String,
    ) -> Self {
        let limiter = auth::LoginLimiter::new(config.login_max_failures, config.login_window);
        let bulk = Arc::new(bulk::jobs::Jobs::new(config.bulk_dir.clone(), config.bulk_retention));
        AppState {
            store,
            config: Arc::new(config),
            login_limiter: Arc::new(limiter),
            clock: Arc::new(time::OffsetDateTime::now_utc),
            cache: Arc::new(cache::Caches::new()),
            bulk,
            policies: Arc::new(policies),
            catalogues: Arc::new(catalogues),
            policy_source: source.into(),
            recognition: Arc::new(tiercare_domain::recognition::RecognitionConfig::default_config()),
        }
    }

    /// The same state with another clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn now(&self) -> time::OffsetDateTime {
        (self.clock)()
    }
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let max = state.config.max_body_bytes;
    routes::api_router()
        .merge(fhir::router(&state))
        .merge(web::router())
        .layer(DefaultBodyLimit::max(max))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Serve on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let interval = state.config.sweep_interval;
    let sweeper = (!interval.is_zero()).then(|| tokio::spawn(sweeper::run(state.clone(), interval)));
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    if let Some(task) = sweeper {
        task.abort();
    }
    served
}

/// Request log: method, route template, status, latency. Never the raw URI or body.
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "-".into());
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    tracing::info!(
        target: "tiercare::http",
        %method,
        route,
        status = resp.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
    );
    resp
}
