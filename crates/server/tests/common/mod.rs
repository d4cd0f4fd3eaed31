//! Test harness: a real tiercare server on a loopback port over a fresh SQLite file,
//! with a small seeded network (one alliance, two communities, six facilities with
//! locations and emergency centres, ten users), a clock the test can move, and a thin
//! reqwest client.
#![allow(dead_code)] // not every test binary uses every helper

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tiercare_domain::facility::{Alliance, Capabilities, Community, EmergencyCentre, Facility, GeoPoint, Grade, Tier};
use tiercare_domain::role::Role;
use tiercare_server::{AppState, ServerConfig};
use tiercare_store::sqlite::SqliteStore;
use tiercare_store::{Store, User, new_id};
use tokio::sync::oneshot;
use uuid::Uuid;

/// Every seeded user has this password.
pub const PASSWORD: &str = "yuechi-2026-secret";

/// GB/T 2260 codes used by the seed.
pub const YUECHI: &str = "511621"; // 四川省广安市岳池县
pub const WUSHENG: &str = "511622"; // 四川省广安市武胜县
pub const GUANG_AN: &str = "511600"; // 四川省广安市 (insurance pooling region)
pub const GUANG_AN_DISTRICT: &str = "511602"; // 四川省广安市广安区
pub const JINJIANG: &str = "510104"; // 四川省成都市锦江区
pub const CHENGDU: &str = "510100"; // 四川省成都市 (insurance pooling region)

/// Ids of the seeded registries.
#[derive(Debug, Clone)]
pub struct Seed {
    pub alliance: Uuid,
    /// 岳池县医共体, community_wide_read = false.
    pub community_a: Uuid,
    /// 武胜县医共体, community_wide_read = true.
    pub community_b: Uuid,
    /// 岳池县人民医院 (county, community A).
    pub county_hospital: Uuid,
    /// 岳池县九龙镇白庙村卫生室 (village, community A).
    pub village_clinic: Uuid,
    /// 武胜县沿口镇中心卫生院 (township, community B).
    pub township_b: Uuid,
    /// 岳池县罗渡镇中心卫生院 (township, community A).
    pub township_a: Uuid,
    /// 广安市人民医院 (city, in no community; chest-pain and stroke centres).
    pub city_hospital: Uuid,
    /// 四川省人民医院 (provincial, Chengdu 510104, insurance region 510100; chest-pain
    /// and stroke centres).
    pub provincial_hospital: Uuid,
}

/// One answer of the server.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    /// The body parsed as JSON, or `Null` when it is not JSON.
    pub json: Value,
}

impl Resp {
    /// `error.code` of an error body ("" when absent).
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
    /// `error.details[i].code` ("" when absent).
    pub fn detail_code(&self, i: usize) -> &str {
        self.json["error"]["details"][i]["code"].as_str().unwrap_or("")
    }
    /// `error.details[i].field` ("" when absent).
    pub fn detail_field(&self, i: usize) -> &str {
        self.json["error"]["details"][i]["field"].as_str().unwrap_or("")
    }
    /// `id` of a created object.
    pub fn id(&self) -> Uuid {
        let raw = self.json["id"].as_str().unwrap_or_else(|| panic!("no id in {}", self.text));
        Uuid::parse_str(raw).expect("the id is a UUID")
    }
    /// Assert status and error code, with the body in the failure message.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "status; body: {}", self.text);
        assert_eq!(self.code(), code, "error code; body: {}", self.text);
    }
    #[track_caller]
    pub fn expect_status(&self, status: u16) {
        assert_eq!(self.status.as_u16(), status, "status; body: {}", self.text);
    }
}

/// A running server and what the test needs to talk to it.
pub struct TestServer {
    pub base: String,
    pub store: Arc<dyn Store>,
    pub client: reqwest::Client,
    pub seed: Seed,
    users: HashMap<&'static str, Uuid>,
    /// Seconds the server's clock runs ahead of the wall clock (see [`TestServer::advance`]).
    clock_offset: Arc<AtomicI64>,
    shutdown: Option<oneshot::Sender<()>>,
    dir: PathBuf,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn facility(code: &str, name: &str, tier: Tier, grade: Grade, region: &str, community: Uuid) -> Facility {
    Facility {
        id: new_id(),
        code: code.into(),
        name: name.into(),
        tier,
        grade,
        region_code: region.into(),
        insurance_region: GUANG_AN.into(),
        community_id: Some(community),
        capabilities: Capabilities::default(),
        location: None,
        referral_policy: Default::default(),
    }
}

fn at(lat: f64, lon: f64) -> Option<GeoPoint> {
    Some(GeoPoint { lat, lon })
}

impl TestServer {
    /// The status URL's path of a 202 bulk kick-off (its `Content-Location`, on this server).
    pub fn bulk_status_path(&self, r: &Resp) -> String {
        assert_eq!(r.status.as_u16(), 202, "{}", r.text);
        let loc = r.headers.get("content-location").and_then(|v| v.to_str().ok()).expect("Content-Location");
        loc.strip_prefix(&self.base).unwrap_or_else(|| panic!("an absolute URL of this server: {loc}")).to_owned()
    }

    /// Poll a bulk job's status URL until it is no longer 202 (each 202 answer is handed to
    /// `on_pending` first); the final answer.
    pub async fn poll_bulk_job(&self, path: &str, token: &str, on_pending: impl Fn(&Resp)) -> Resp {
        for _ in 0..400 {
            let r = self.get(path, token).await;
            if r.status.as_u16() != 202 {
                return r;
            }
            on_pending(&r);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the job did not finish in 20 s");
    }

    /// Fresh store, seeded registries and users, server listening on 127.0.0.1:<random>.
    pub async fn start() -> TestServer {
        Self::start_with(ServerConfig::default()).await
    }

    /// As [`TestServer::start`], without the background deadline sweeper: the test moves
    /// the clock and runs the sweeper itself.
    pub async fn start_without_sweeper() -> TestServer {
        Self::start_with(ServerConfig { sweep_interval: std::time::Duration::ZERO, ..ServerConfig::default() }).await
    }

    /// As [`TestServer::start`], with server settings of the test's choosing.
    pub async fn start_with(config: ServerConfig) -> TestServer {
        let dir = std::env::temp_dir().join(format!("tiercare-http-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("a temp dir for the test database");
        let sqlite = SqliteStore::open(&dir.join("tiercare.db")).await.expect("open the SQLite store");
        sqlite.migrate().await.expect("migrate the fresh store");
        let store: Arc<dyn Store> = Arc::new(sqlite);

        let alliance = Alliance { id: new_id(), name: "广安市医联体".into(), region_code: GUANG_AN.into() };
        store.create_alliance(&alliance).await.expect("seed alliance");
        let community_a = Community {
            id: new_id(),
            alliance_id: Some(alliance.id),
            name: "岳池县医共体".into(),
            region_code: YUECHI.into(),
            community_wide_read: false,
        };
        let community_b = Community {
            id: new_id(),
            alliance_id: Some(alliance.id),
            name: "武胜县医共体".into(),
            region_code: WUSHENG.into(),
            community_wide_read: true,
        };
        store.create_community(&community_a).await.expect("seed community A");
        store.create_community(&community_b).await.expect("seed community B");
        let mut county =
            facility("H51162100001", "岳池县人民医院", Tier::County, Grade::Level2A, YUECHI, community_a.id);
        county.capabilities.emergency_centres = vec![EmergencyCentre::ChestPain, EmergencyCentre::Stroke];
        county.location = at(30.538, 106.440);
        let village = facility(
            "H51162100101",
            "岳池县九龙镇白庙村卫生室",
            Tier::Village,
            Grade::Ungraded,
            YUECHI,
            community_a.id,
        );
        let mut township =
            facility("H51162200201", "武胜县沿口镇中心卫生院", Tier::Township, Grade::Level1, WUSHENG, community_b.id);
        township.location = at(30.350, 106.290);
        let mut township_a =
            facility("H51162100201", "岳池县罗渡镇中心卫生院", Tier::Township, Grade::Level1, YUECHI, community_a.id);
        township_a.location = at(30.450, 106.350);
        // outside the community: no community, the city's own district
        let mut city =
            facility("H51160200001", "广安市人民医院", Tier::City, Grade::Level3A, GUANG_AN_DISTRICT, community_a.id);
        city.community_id = None;
        city.capabilities.emergency_centres = vec![EmergencyCentre::ChestPain, EmergencyCentre::Stroke];
        city.location = at(30.456, 106.633);
        let mut provincial =
            facility("H51010400001", "四川省人民医院", Tier::Provincial, Grade::Level3A, JINJIANG, community_a.id);
        provincial.community_id = None;
        provincial.insurance_region = CHENGDU.into();
        provincial.capabilities.emergency_centres = vec![EmergencyCentre::ChestPain, EmergencyCentre::Stroke];
        provincial.location = at(30.660, 104.040);
        for f in [&county, &village, &township, &township_a, &city, &provincial] {
            store.create_facility(f).await.expect("seed facility");
        }
        let seed = Seed {
            alliance: alliance.id,
            community_a: community_a.id,
            community_b: community_b.id,
            county_hospital: county.id,
            village_clinic: village.id,
            township_b: township.id,
            township_a: township_a.id,
            city_hospital: city.id,
            provincial_hospital: provincial.id,
        };

        let hash = tiercare_server::auth::hash_password(PASSWORD).expect("hash the test password");
        let mut users = HashMap::new();
        let people: [(&'static str, &str, Uuid, Role); 10] = [
            ("sysadmin", "系统管理员", county.id, Role::SystemAdmin),
            ("admin_a", "岳池医共体管理员", county.id, Role::CommunityAdmin),
            ("admin_b", "武胜医共体管理员", township.id, Role::CommunityAdmin),
            ("vdoc_a", "李村医", village.id, Role::VillageDoctor),
            ("spec_a", "张主任", county.id, Role::Specialist),
            ("clin_b", "刘医生", township.id, Role::TownshipClinician),
            ("clin_a", "陈医生", township_a.id, Role::TownshipClinician),
            ("rc_county", "县转诊中心周护士", county.id, Role::ReferralCentre),
            ("rc_city", "市转诊中心吴护士", city.id, Role::ReferralCentre),
            ("rc_prov", "省医转诊中心郑医生", provincial.id, Role::ReferralCentre),
        ];
        for (username, display, fac, role) in people {
            let u = User {
                id: new_id(),
                username: username.into(),
                display_name: display.into(),
                facility_id: fac,
                roles: vec![role],
                password_hash: hash.clone(),
                active: true,
            };
            store.create_user(&u).await.expect("seed user");
            users.insert(username, u.id);
        }

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let (tx, rx) = oneshot::channel::<()>();
        let clock_offset = Arc::new(AtomicI64::new(0));
        let offset = clock_offset.clone();
        let state = AppState::new(store.clone(), config).with_clock(Arc::new(move || {
            time::OffsetDateTime::now_utc() + time::Duration::seconds(offset.load(Ordering::SeqCst))
        }));
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            if let Err(e) = tiercare_server::serve(listener, state, shutdown).await {
                eprintln!("test server stopped with an error: {e}");
            }
        });
        TestServer {
            base: format!("http://{addr}"),
            store,
            client: reqwest::Client::new(),
            seed,
            users,
            clock_offset,
            shutdown: Some(tx),
            dir,
        }
    }

    /// Add a user directly through the store (password [`PASSWORD`]).
    pub async fn add_user(&mut self, username: &'static str, facility_id: Uuid, role: Role) -> Uuid {
        let u = User {
            id: new_id(),
            username: username.into(),
            display_name: username.into(),
            facility_id,
            roles: vec![role],
            password_hash: tiercare_server::auth::hash_password(PASSWORD).expect("hash"),
            active: true,
        };
        self.store.create_user(&u).await.expect("create user");
        self.users.insert(username, u.id);
        u.id
    }

    /// Move the server's clock forward.
    pub fn advance(&self, by: time::Duration) {
        self.clock_offset.fetch_add(by.whole_seconds(), Ordering::SeqCst);
    }

    /// The time as the server sees it.
    pub fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc() + time::Duration::seconds(self.clock_offset.load(Ordering::SeqCst))
    }

    pub fn user_id(&self, username: &str) -> Uuid {
        *self.users.get(username).unwrap_or_else(|| panic!("no seeded user {username}"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Send a prepared request and read the answer.
    pub async fn send(&self, rb: RequestBuilder) -> Resp {
        let resp = rb.send().await.expect("the server answers");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("read the body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp { status, headers, text, json }
    }

    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Resp {
        let mut rb = self.client.request(method, self.url(path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        self.send(rb).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token), Some(&body)).await
    }

    /// POST /api/v1/auth/login.
    pub async fn try_login(&self, username: &str, password: &str) -> Resp {
        let body = json!({ "username": username, "password": password });
        self.call(Method::POST, "/api/v1/auth/login", None, Some(&body)).await
    }

    /// Sign in as a seeded user; the session token.
    pub async fn login(&self, username: &str) -> String {
        let r = self.try_login(username, PASSWORD).await;
        r.expect_status(200);
        r.json["token"].as_str().expect("a token in the login answer").to_owned()
    }

    pub async fn patient_count(&self) -> u64 {
        self.store.count_patients().await.expect("count patients")
    }

    pub async fn user_count(&self) -> usize {
        self.store.list_users().await.expect("list users").len()
    }

    /// Encounters on a patient's record, read directly from the store.
    pub async fn encounter_count(&self, patient: Uuid) -> usize {
        self.store.patient_record(patient).await.expect("read record").map_or(0, |r| r.encounters.len())
    }
}
