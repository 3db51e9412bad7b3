//! The backbone runtimes behind one trait: tract always, onnxruntime when
//! marquee is built with the `onnxruntime` feature and its library is here
//! (`ORT_DYLIB_PATH`, or the PyPI wheel that `scripts/test` unpacks into
//! `target/onnxruntime-venv`). Without the library the onnxruntime half says
//! so on stderr and in `scripts/test`'s output; it never passes silently
//! with the feature built and the library present.

use marquee::drawing::drawn_poster_jpeg;
use marquee::model::backbone::{RuntimeChoice, RuntimeKind, RuntimeOptions};
use marquee::model::{default_model_dir, manifest::Manifest, Classifier};
use std::path::PathBuf;

/// A library path that does not exist, for the fallback and error tests.
fn missing_library() -> PathBuf {
    PathBuf::from("/nonexistent/marquee-test/libonnxruntime.so")
}

#[test]
fn auto_falls_back_to_tract_when_the_library_is_missing() {
    let options = RuntimeOptions {
        choice: RuntimeChoice::Auto,
        library: Some(missing_library()),
        ..RuntimeOptions::default()
    };
    let c = Classifier::load_with(&default_model_dir(), None, &options).unwrap();
    assert_eq!(c.runtime(), RuntimeKind::Tract);
    assert_eq!(
        c.variant(),
        "int8",
        "tract runs the file the manifest gives it"
    );
    assert_eq!(
        c.name(),
        "efficientnet-lite0-int8",
        "tract keeps the plain name"
    );
    let why = c.fallback().expect("the fallback is explained");
    if cfg!(feature = "onnxruntime") {
        assert!(
            why.contains("/nonexistent/marquee-test/libonnxruntime.so"),
            "names the path tried: {why}"
        );
    } else {
        assert!(why.contains("without onnxruntime support"), "{why}");
    }
    assert!(c.classify(&drawn_poster_jpeg(3, 224, 320)).is_ok());
}

#[test]
fn onnxruntime_with_a_bad_library_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libonnxruntime.so");
    std::fs::write(&fake, b"not a shared library").unwrap();
    for library in [missing_library(), fake] {
        let options = RuntimeOptions {
            choice: RuntimeChoice::Onnxruntime,
            library: Some(library.clone()),
            ..RuntimeOptions::default()
        };
        let err = Classifier::load_with(&default_model_dir(), None, &options)
            .err()
            .expect("refused")
            .to_string();
        if cfg!(feature = "onnxruntime") {
            assert!(
                err.contains(&library.display().to_string()),
                "names the path tried: {err}"
            );
        } else {
            assert!(err.contains("cargo feature `onnxruntime`"), "{err}");
        }
    }
}

#[test]
fn tract_runs_every_shipped_variant_through_the_trait() {
    let dir = default_model_dir();
    let manifest = Manifest::load(&dir).unwrap();
    for name in manifest.variants.keys() {
        if !manifest.runs_on(name, "tract") {
            continue;
        }
        let c = Classifier::load_with(
            &dir,
            Some(name),
            &RuntimeOptions::with_choice(RuntimeChoice::Tract),
        )
        .unwrap();
        assert_eq!(c.runtime(), RuntimeKind::Tract);
        let p = c.classify(&drawn_poster_jpeg(5, 224, 320)).unwrap();
        assert_eq!(p.top3.len(), 3, "{name}");
    }
}

/// The manifest names a file per runtime, and each is in the manifest.
#[test]
fn each_runtime_has_its_variant() {
    let manifest = Manifest::load(&default_model_dir()).unwrap();
    assert_eq!(manifest.variant_for("tract"), "int8");
    assert_eq!(manifest.variant_for("onnxruntime"), "int8-full");
    let full = &manifest.variants["int8-full"];
    let cosine = full.extra["vs_f32"]["cosine_mean"].as_f64().unwrap();
    assert!(cosine >= 0.99, "int8-full features vs f32: {cosine}");
}

#[cfg(feature = "onnxruntime")]
mod with_onnxruntime {
    use super::*;
    use crate::common::broker::{Broker, Subscriber};
    use crate::common::daemon::Fixture;
    use crate::common::{self, http::request};
    use marquee::model::backbone::Backbone;
    use std::time::Duration;

    /// The onnxruntime library for these tests, or why there is none.
    pub fn library() -> Option<PathBuf> {
        let found = std::env::var_os("ORT_DYLIB_PATH")
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .or_else(|| {
                let venv =
                    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/onnxruntime-venv/lib");
                let python = std::fs::read_dir(venv).ok()?.flatten().next()?.path();
                let capi = python.join("site-packages/onnxruntime/capi");
                std::fs::read_dir(capi)
                    .ok()?
                    .flatten()
                    .map(|e| e.path())
                    .find(|p| {
                        p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with("libonnxruntime.so"))
                    })
            });
        if found.is_none() {
            eprintln!(
                "SKIPPED: no onnxruntime library (set ORT_DYLIB_PATH, or let scripts/test \
                 unpack the PyPI wheel into target/onnxruntime-venv)"
            );
        }
        found
    }

    fn options(library: PathBuf) -> RuntimeOptions {
        RuntimeOptions {
            choice: RuntimeChoice::Onnxruntime,
            library: Some(library),
            ..RuntimeOptions::default()
        }
    }

    /// The trait's two implementations on the drawn fixture, every variant:
    /// onnxruntime against the figures `tools/check_backbone.py` recorded
    /// (tract's half is `backbone_reference`), and the two runtimes against
    /// each other.
    #[test]
    fn onnxruntime_matches_the_reference_and_tract_on_every_variant() {
        let Some(library) = library() else { return };
        let dir = default_model_dir();
        let manifest = Manifest::load(&dir).unwrap();
        for name in manifest.variants.keys() {
            let (_, v) = manifest.variant(Some(name)).unwrap();
            let bytes = std::fs::read(dir.join(&v.file)).unwrap();
            let ort = Backbone::load(
                &bytes,
                &manifest.backbone,
                RuntimeKind::Onnxruntime,
                &options(library.clone()),
            )
            .unwrap();
            assert_eq!(ort.kind(), RuntimeKind::Onnxruntime);
            let tensor = crate::backbone_reference::tensor_of_fixture(&manifest);
            let a = ort.features(tensor.clone()).unwrap();
            crate::backbone_reference::check_features(name, &a, "onnxruntime");
            if manifest.runs_on(name, "tract") {
                let tract = Backbone::from_onnx_bytes(&bytes, &manifest.backbone).unwrap();
                let b = tract.features(tensor).unwrap();
                let cos = cosine(&a, &b);
                assert!(cos > 0.999, "{name}: onnxruntime vs tract cosine {cos}");
            }
        }
    }

    fn cosine(a: &[f32], b: &[f32]) -> f64 {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x * y)).sum();
        let n = |v: &[f32]| v.iter().map(|x| f64::from(x * x)).sum::<f64>().sqrt();
        dot / (n(a) * n(b))
    }

    #[test]
    fn auto_picks_onnxruntime_and_its_variant_when_the_library_loads() {
        let Some(library) = library() else { return };
        let options = RuntimeOptions {
            choice: RuntimeChoice::Auto,
            ..options(library)
        };
        let c = Classifier::load_with(&default_model_dir(), None, &options).unwrap();
        assert_eq!(c.runtime(), RuntimeKind::Onnxruntime);
        assert_eq!(c.variant(), "int8-full");
        assert_eq!(c.name(), "efficientnet-lite0-int8-full@onnxruntime");
        assert!(c.fallback().is_none());
        assert!(
            c.runtime_about().contains("onnxruntime 1."),
            "{}",
            c.runtime_about()
        );
    }

    #[test]
    fn a_provider_the_library_lacks_is_a_clear_error() {
        let Some(library) = library() else { return };
        let options = RuntimeOptions {
            providers: vec![marquee::model::backbone::Provider::Tensorrt],
            ..options(library)
        };
        let err = Classifier::load_with(&default_model_dir(), None, &options)
            .err()
            .expect("the CPU wheel has no TensorRT")
            .to_string();
        assert!(err.contains("tensorrt"), "{err}");
        assert!(err.contains("not in the loaded library"), "{err}");
    }

    /// The real daemon on onnxruntime: the log's choice shows in the model
    /// card and `/api/v1/model`, and every event names the runtime.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_daemon_on_onnxruntime_says_so_everywhere() {
        let Some(library) = library() else { return };
        let broker = Broker::launch();
        let topic = "marquee/ort/poster";
        let mut sub = Subscriber::connect(broker.port(), &[topic]).await;
        let mut daemon = Fixture::start("ort", broker.url(), |cfg| {
            cfg.inference.backend = RuntimeChoice::Auto;
            cfg.inference.onnxruntime_library = Some(library);
        })
        .await;
        common::wait_subscribed(&daemon.inner.running().publish, Duration::from_secs(20)).await;
        let reply = daemon.upload(&drawn_poster_jpeg(41, 240, 360)).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let event = reply.json();
        assert_eq!(event["model"], "efficientnet-lite0-int8-full@onnxruntime");
        let published = sub.expect(topic, Duration::from_secs(20)).await.json();
        assert_eq!(published["model"], event["model"]);
        let card = request(daemon.addr, "GET", "/api/v1/model", &[], b"")
            .await
            .json();
        assert_eq!(card["runtime"], "onnxruntime");
        assert_eq!(card["variant"], "int8-full");
        let page = daemon.get("/model", &[]).await.text();
        assert!(
            page.contains("onnxruntime 1."),
            "the model page names the runtime"
        );
        daemon.stop().await;
    }
}
