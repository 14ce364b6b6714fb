//! CPU cost per event of the ingest hot path: JWT verify (RS256, cached JWKS), envelope
//! parse, entity key and content hash. The simulator signs, exactly as Canvas would;
//! coursewire's verifier checks.
//!
//! Run: `cargo bench -p coursewire-benches --bench ingest_hot_path`.

use coursewire_live_events::jwt::{EventVerifier, HttpJwksSource, KeyCache, KeyCacheSettings};
use coursewire_live_events::live_events::{self, DeliveryHints};
use coursewire_simulators::canvas_live_events::{
    Emitter, JwksServer, KeyRing, Scenario, ScenarioConfig,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ISSUER: &str = "https://canvas.bench";

fn hot_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ring = Arc::new(KeyRing::new().expect("keys"));
    let server = rt
        .block_on(JwksServer::start(ring.clone()))
        .expect("jwks server");
    let source = HttpJwksSource::new(server.url(), Duration::from_secs(3)).expect("client");
    let cache = KeyCache::new(Arc::new(source), KeyCacheSettings::default());
    let verifier = EventVerifier::new(Arc::new(cache), ISSUER, 60);
    rt.block_on(verifier.key_cache().warm()).expect("warm JWKS");

    // A realistic event: the scenario's first grade change, as Canvas sends it.
    let scenario = Scenario::build(ScenarioConfig::default());
    let event = scenario
        .events
        .iter()
        .find(|e| e.event_name == "grade_change")
        .expect("grade change");
    let emitter = Emitter::new(ring.clone(), ISSUER).expect("emitter");
    let token = emitter.jwt(&event.canvas).expect("signed");
    let raw_json = serde_json::to_vec(&event.canvas).expect("json");
    println!(
        "event: {} bytes of JSON, token {} bytes",
        raw_json.len(),
        token.len()
    );

    let mut group = c.benchmark_group("ingest_hot_path");
    group.throughput(Throughput::Elements(1));
    group.bench_function(
        "https: verify + parse + key + hash (signed grade_change)",
        |b| {
            b.iter(|| {
                rt.block_on(async {
                    let claims = verifier.verify(black_box(&token)).await.expect("valid");
                    let event = live_events::from_jwt_claims(claims).expect("parses");
                    black_box(event.entity_key);
                })
            })
        },
    );
    group.bench_function("sqs: parse + key + hash (raw grade_change)", |b| {
        b.iter(|| {
            let event = live_events::parse_json(black_box(&raw_json), DeliveryHints::default())
                .expect("parses");
            black_box(event.entity_key);
        })
    });
    let jwks = ring.jwks();
    let jwk = &jwks["keys"][1];
    let decode = |f: &str| {
        base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            jwk[f].as_str().expect("b64"),
        )
        .expect("b64")
    };
    let (n, e) = (decode("n"), decode("e"));
    let parsed = aws_lc_rs::signature::RsaPublicKeyComponents {
        n: n.as_slice(),
        e: e.as_slice(),
    }
    .to_parsed_public_key(&aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256)
    .expect("key");
    let (signing_input, signature) = token.rsplit_once('.').expect("jws");
    let signature =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature)
            .expect("sig");
    group.bench_function("part: bare RSA-2048 PKCS#1 v1.5 SHA-256 verify", |b| {
        b.iter(|| {
            parsed
                .verify_sig(black_box(signing_input.as_bytes()), black_box(&signature))
                .expect("verifies")
        })
    });
    // Where the time goes: the same steps one by one.
    let payload: serde_json::Value = serde_json::from_slice(&raw_json).expect("json");
    group.bench_function("part: JSON parse only", |b| {
        b.iter(|| {
            black_box(
                serde_json::from_slice::<serde_json::Value>(black_box(&raw_json)).expect("json"),
            )
        })
    });
    group.bench_function("part: envelope + key + hash from parsed JSON", |b| {
        b.iter(|| {
            black_box(
                live_events::from_value(black_box(payload.clone()), DeliveryHints::default())
                    .expect("parses"),
            )
        })
    });
    group.bench_function(
        "part: clone parsed JSON (overhead of the line above)",
        |b| b.iter(|| black_box(black_box(&payload).clone())),
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = hot_path
}
criterion_main!(benches);
