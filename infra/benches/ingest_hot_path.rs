//! CPU cost per event of the ingest hot path: JWT verify (RS256, cached JWKS) + envelope parse
//! + entity key + content hash. The simulator signs, exactly as Canvas would; coursewire's
//! verifier checks. Run: `cargo bench -p coursewire-infra --bench ingest_hot_path`.

use coursewire::jwt::{EventVerifier, HttpJwksSource, KeyCache, KeyCacheSettings};
use coursewire::live_events::{self, DeliveryHints};
use coursewire_infra::canvas_sim::{Emitter, JwksServer, KeyRing, Scenario, ScenarioConfig};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

const ISSUER: &str = "https://canvas.bench";

fn hot_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let ring = Arc::new(KeyRing::new().expect("keys"));
    let server = rt.block_on(JwksServer::start(ring.clone())).expect("jwks server");
    let source = HttpJwksSource::new(server.url(), Duration::from_secs(3)).expect("client");
    let cache = KeyCache::new(Arc::new(source), KeyCacheSettings::default());
    let verifier = EventVerifier::new(Arc::new(cache), ISSUER, 60);
    rt.block_on(verifier.key_cache().warm()).expect("warm JWKS");

    // A realistic event: the scenario's first grade change, as Canvas sends it.
    let scenario = Scenario::build(ScenarioConfig::default());
    let event = scenario.events.iter().find(|e| e.event_name == "grade_change").expect("grade change");
    let emitter = Emitter::new(ring.clone(), ISSUER).expect("emitter");
    let token = emitter.jwt(&event.canvas).expect("signed");
    let raw_json = serde_json::to_vec(&event.canvas).expect("json");

    let mut group = c.benchmark_group("ingest_hot_path");
    group.throughput(Throughput::Elements(1));
    group.bench_function("https: verify + parse + key + hash (signed grade_change)", |b| {
        b.iter(|| {
            rt.block_on(async {
                let claims = verifier.verify(black_box(&token)).await.expect("valid");
                let event = live_events::from_jwt_claims(claims).expect("parses");
                black_box(event.entity_key);
            })
        })
    });
    group.bench_function("sqs: parse + key + hash (raw grade_change)", |b| {
        b.iter(|| {
            let event = live_events::parse_json(black_box(&raw_json), DeliveryHints::default()).expect("parses");
            black_box(event.entity_key);
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = hot_path
}
criterion_main!(benches);
