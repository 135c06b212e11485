//! Everything decided up front from the seed, before the days are generated
//! (in parallel): the account, the fleet, the stable random names, when and
//! where attacks happen, and the benign hard cases of the attack days.

use rand::SeedableRng;
use rand::seq::SliceRandom;

use super::SimConfig;
use super::attacks::{AttackSpec, Class};
use super::fleet::{FnSpec, Kind, fleet};
use super::inv::{NamePool, NewDep, World};
use super::util::{ALNUM, DIGITS, MS_PER_DAY, Rng, chance, index, int, mix, pick, token, uniform};

#[derive(Debug, Clone)]
pub struct PlannedAttack {
    pub t0: f64,
    pub fi: usize,
    pub spec: AttackSpec,
}

#[derive(Debug, Clone)]
pub struct Deploy {
    pub fi: usize,
    pub t: f64,
    pub version: u32,
    pub dep: NewDep,
    pub extra_layer: Option<String>,
}

/// A time window of one function (or of the fleet when `fi` is `None`).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub fi: Option<usize>,
    pub start: f64,
    pub end: f64,
}

impl Window {
    pub fn contains(&self, fi: usize, t: f64) -> bool {
        self.fi.is_none_or(|f| f == fi) && t >= self.start && t < self.end
    }
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub start_ms: i64,
    pub days: u32,
    pub invocations_per_day: u64,
    pub first_attack_day: u32,
    pub world: World,
    /// Attacks per day, in time order.
    pub attacks: Vec<Vec<PlannedAttack>>,
    pub deploys: Vec<Deploy>,
    pub spikes: Vec<Window>,
    pub outages: Vec<Window>,
    /// Scale-out waves of cold starts (deploy waves come from `deploys`).
    pub waves: Vec<Window>,
}

impl Plan {
    pub fn day_start(&self, day: u32) -> i64 {
        self.start_ms + i64::from(day) * MS_PER_DAY
    }

    pub fn is_attack_day(&self, day: u32) -> bool {
        day >= self.first_attack_day && day < self.days
    }

    pub fn fn_index(&self, kind: Kind) -> Option<usize> {
        self.world.fns.iter().position(|f| f.kind == kind)
    }
}

/// A seed for a named stream of randomness.
pub fn sub_seed(seed: u64, stream: u64) -> u64 {
    mix(mix(seed) ^ mix(stream.wrapping_add(0x5eed_0ff0_0d00)))
}

/// A machine-made token of `n` characters with at least two digits and a letter.
pub fn mixed_token(r: &mut Rng, n: usize) -> String {
    let mut t: Vec<u8> = token(r, n, ALNUM).into_bytes();
    let digits = t.iter().filter(|c| c.is_ascii_digit()).count();
    if digits < 2 && n >= 3 {
        for _ in 0..(2 - digits) {
            let i = index(r, n - 1) + 1;
            t[i] = DIGITS[index(r, 10)];
        }
    }
    if !t.iter().any(u8::is_ascii_alphabetic) {
        t[0] = b'd';
    }
    String::from_utf8(t).unwrap_or_default()
}

pub fn cdn_name(r: &mut Rng) -> String {
    format!("d{}.cloudfront.net", mixed_token(r, 13))
}

pub fn apigw_name(r: &mut Rng) -> String {
    let region = *pick(
        r,
        &[
            "us-east-1",
            "us-east-1",
            "us-east-2",
            "eu-west-1",
            "us-west-2",
        ],
    );
    format!("{}.execute-api.{region}.amazonaws.com", mixed_token(r, 10))
}

pub fn bucket_name(r: &mut Rng) -> String {
    let kind = *pick(r, &["docs", "assets", "exports", "invoices"]);
    format!(
        "cust-{}-{kind}.s3.us-east-1.amazonaws.com",
        mixed_token(r, 8)
    )
}

fn make_account(r: &mut Rng) -> String {
    let mut a = token(r, 12, DIGITS);
    if a.starts_with('0') {
        a.replace_range(0..1, "4");
    }
    a
}

pub fn make(cfg: &SimConfig) -> Plan {
    let mut r = Rng::seed_from_u64(sub_seed(cfg.seed, 0));
    let account = make_account(&mut r);
    let fns: Vec<FnSpec> = fleet(&account);
    let mut world = World {
        account,
        fns,
        cdn: NamePool::default(),
        apigw: NamePool::default(),
        buckets: NamePool::default(),
    };
    world.cdn.base = (0..400).map(|_| cdn_name(&mut r)).collect();
    world.apigw.base = (0..60).map(|_| apigw_name(&mut r)).collect();
    world.buckets.base = (0..80).map(|_| bucket_name(&mut r)).collect();

    let start_ms = cfg.start.timestamp_millis();
    let days = cfg.days;
    let attack_days = cfg.attack_days.min(days);
    let first = days - attack_days;
    let mut plan = Plan {
        start_ms,
        days,
        invocations_per_day: cfg.invocations_per_day,
        first_attack_day: first,
        world,
        attacks: vec![Vec::new(); days as usize],
        deploys: Vec::new(),
        spikes: Vec::new(),
        outages: Vec::new(),
        waves: Vec::new(),
    };
    if attack_days == 0 {
        return plan;
    }

    // Attacks: each class spread over its target functions and the attack days.
    let mut r = Rng::seed_from_u64(sub_seed(cfg.seed, 1));
    for class in Class::ALL {
        let mut targets: Vec<usize> = class
            .targets()
            .iter()
            .filter_map(|k| plan.fn_index(*k))
            .collect();
        targets.shuffle(&mut r);
        let n = cfg.attacks_per_class as usize;
        let mut days_seq: Vec<u32> = (0..n).map(|i| first + (i as u32 % attack_days)).collect();
        days_seq.shuffle(&mut r);
        for (i, &day) in days_seq.iter().enumerate() {
            let fi = targets[i % targets.len()];
            let t0 = plan.day_start(day) as f64
                + uniform(&mut r, 30_000.0, (23.0 * 60.0 + 40.0) * 60_000.0);
            let campaign = int(&mut r, 0, i64::from(class.campaigns()) - 1) as u32;
            plan.attacks[day as usize].push(PlannedAttack {
                t0,
                fi,
                spec: AttackSpec { class, campaign },
            });
        }
    }
    for a in &mut plan.attacks {
        a.sort_by(|x, y| x.t0.total_cmp(&y.t0));
    }

    if !cfg.hard_cases {
        return plan;
    }
    let mut r = Rng::seed_from_u64(sub_seed(cfg.seed, 2));
    let attack_day = |r: &mut Rng| first + int(r, 0, i64::from(attack_days) - 1) as u32;
    let hour = 3_600_000.0;

    // Deploys that bring a new dependency (and a cold-start wave).
    let mut candidates: Vec<Kind> = vec![
        Kind::OrdersApi,
        Kind::BillingWorker,
        Kind::WebhookRelay,
        Kind::AuthToken,
        Kind::TemplatePreview,
    ];
    candidates.shuffle(&mut r);
    let n_deploys = if chance(&mut r, 0.5) { 2 } else { 1 };
    let account = plan.world.account.clone();
    for kind in candidates.iter().take(n_deploys) {
        let Some(fi) = plan.fn_index(*kind) else {
            continue;
        };
        let f = &plan.world.fns[fi];
        let day = attack_day(&mut r);
        let t = plan.day_start(day) as f64 + uniform(&mut r, 9.0 * hour, 15.0 * hour);
        let sentry_org = format!("o{}", int(&mut r, 100_000, 999_999));
        let (host, layer) = match int(&mut r, 0, 3) {
            0 => (
                format!("{sentry_org}.ingest.sentry.io"),
                Some(if f.runtime.starts_with("python") {
                    "arn:aws:lambda:us-east-1:943013980633:layer:SentryPythonServerlessSDK:112"
                        .to_string()
                } else {
                    "arn:aws:lambda:us-east-1:943013980633:layer:SentryNodeServerlessSDK:235"
                        .to_string()
                }),
            ),
            1 => ("api.segment.io".to_string(), None),
            2 => ("events.launchdarkly.com".to_string(), None),
            _ => (
                "http-intake.logs.datadoghq.com".to_string(),
                Some(
                    "arn:aws:lambda:us-east-1:464622532012:layer:Datadog-Extension:65".to_string(),
                ),
            ),
        };
        let action = match kind {
            Kind::OrdersApi => Some((
                "events",
                "PutEvents",
                format!("arn:aws:events:us-east-1:{account}:event-bus/orders"),
            )),
            Kind::BillingWorker => Some((
                "dynamodb",
                "BatchWriteItem",
                format!("arn:aws:dynamodb:us-east-1:{account}:table/invoice-lines"),
            )),
            Kind::WebhookRelay => Some((
                "s3",
                "GetObject",
                "arn:aws:s3:::acme-webhook-archive/config/routes.json".to_string(),
            )),
            Kind::AuthToken => Some((
                "cognito-idp",
                "AdminGetUser",
                format!("arn:aws:cognito-idp:us-east-1:{account}:userpool/us-east-1_Ab12Cd34E"),
            )),
            Kind::TemplatePreview => Some((
                "dynamodb",
                "Query",
                format!("arn:aws:dynamodb:us-east-1:{account}:table/templates"),
            )),
            _ => None,
        }
        .filter(|(s, a, _)| f.grants(s, a))
        .map(|(s, a, res)| (s.to_string(), a.to_string(), res));
        plan.deploys.push(Deploy {
            fi,
            t,
            version: f.version + 1,
            dep: NewDep { host, action },
            extra_layer: layer,
        });
    }
    plan.deploys.sort_by(|a, b| a.t.total_cmp(&b.t));

    // A traffic spike: ten times the traffic for an hour.
    let deployed: Vec<usize> = plan.deploys.iter().map(|d| d.fi).collect();
    let spike_kinds: Vec<usize> = [
        Kind::OrdersApi,
        Kind::AuthToken,
        Kind::WebhookRelay,
        Kind::BillingWorker,
        Kind::Thumbnailer,
    ]
    .iter()
    .filter_map(|k| plan.fn_index(*k))
    .filter(|fi| !deployed.contains(fi))
    .collect();
    let spike_fi = *pick(&mut r, &spike_kinds);
    let day = attack_day(&mut r);
    let s = plan.day_start(day) as f64 + uniform(&mut r, 12.0 * hour, 19.0 * hour);
    plan.spikes.push(Window {
        fi: Some(spike_fi),
        start: s,
        end: s + hour,
    });

    // An outage of DynamoDB for twenty minutes.
    let day = attack_day(&mut r);
    let s = plan.day_start(day) as f64 + uniform(&mut r, 5.0 * hour, 21.5 * hour);
    plan.outages.push(Window {
        fi: None,
        start: s,
        end: s + 20.0 * 60_000.0,
    });

    // A scale-out: a burst of cold starts for eight minutes.
    let wave_kinds: Vec<usize> = [
        Kind::SearchIndexer,
        Kind::BillingWorker,
        Kind::PdfRender,
        Kind::Thumbnailer,
    ]
    .iter()
    .filter_map(|k| plan.fn_index(*k))
    .filter(|fi| *fi != spike_fi)
    .collect();
    let wave_fi = *pick(&mut r, &wave_kinds);
    let day = attack_day(&mut r);
    let s = plan.day_start(day) as f64 + uniform(&mut r, 6.0 * hour, 22.0 * hour);
    plan.waves.push(Window {
        fi: Some(wave_fi),
        start: s,
        end: s + 8.0 * 60_000.0,
    });
    plan
}
