//! The onnxruntime runtime (cargo feature `onnxruntime`): `libonnxruntime.so`
//! is opened at run time (ort's `load-dynamic`), so the binary runs without
//! it and a board gets the library that suits it (the PyPI wheel's, or
//! JetPack's with CUDA and TensorRT; docs/onnxruntime.md).
//!
//! A session runs one input at a time (`Session::run` takes `&mut`), so
//! there is one per classify worker, each single-threaded like tract's
//! workers: the same parallelism, and the same memory per worker.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock};

use ort::ep::{self, ExecutionProvider};
use ort::session::{builder::GraphOptimizationLevel, Session};
use ort::value::TensorRef;

use super::{BackboneError, Provider, Runtime, RuntimeKind, RuntimeOptions};
use crate::model::manifest::BackboneSpec;

/// The library is process-wide once loaded: which file, its version, and
/// the one environment onnxruntime allows per process.
struct Loaded {
    path: PathBuf,
    version: String,
    env: ort::environment::Environment,
}

static LOADED: OnceLock<Loaded> = OnceLock::new();
static LOAD_LOCK: Mutex<()> = Mutex::new(());

pub struct OrtRuntime {
    idle: Mutex<Vec<Session>>,
    returned: Condvar,
    input: String,
    output: String,
    shape: [usize; 4],
    about: String,
}

fn ort_err(what: &str) -> impl Fn(ort::Error) -> BackboneError + '_ {
    move |e| BackboneError::Onnxruntime(format!("onnxruntime: {what}: {e}"))
}

/// Open the library once per process; a second, different path is refused
/// (onnxruntime cannot be unloaded and loaded again).
fn load_library(options: &RuntimeOptions) -> Result<&'static Loaded, BackboneError> {
    let (path, from) = options.library_path();
    let _guard = LOAD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(loaded) = LOADED.get() {
        if options.library.is_some() && !same_file(&loaded.path, &path) {
            return Err(BackboneError::Onnxruntime(format!(
                "onnxruntime is already loaded from {} in this process; cannot also load {} \
                 (from {from}); restart to change it",
                loaded.path.display(),
                path.display()
            )));
        }
        return Ok(loaded);
    }
    let builder = ort::init_from(&path).map_err(|e| {
        BackboneError::Onnxruntime(format!(
            "cannot load the onnxruntime library {} (from {from}): {e}; install onnxruntime \
             (>= 1.17; e.g. the PyPI wheel's onnxruntime/capi/libonnxruntime.so.*) and point \
             [inference] onnxruntime_library at it, or use backend = \"tract\"",
            path.display()
        ))
    })?;
    let env = builder
        .with_name("marquee")
        .with_telemetry(false)
        .build()
        .map_err(ort_err("creating its environment"))?;
    // The C API gives no version to a caller without unsafe code (this crate
    // forbids it): a release build names its branch, a wheel's library its
    // file (libonnxruntime.so.1.31.1).
    let version = ort::info()
        .split(',')
        .find_map(|part| part.trim().strip_prefix("git-branch=rel-"))
        .map(str::to_string)
        .or_else(|| {
            let name = path.file_name()?.to_string_lossy().to_string();
            let v = name.split_once(".so.")?.1.to_string();
            v.chars().next()?.is_ascii_digit().then_some(v)
        })
        .unwrap_or_else(|| "(version unknown)".into());
    Ok(LOADED.get_or_init(|| Loaded { path, version, env }))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Every named provider must be in the library; then they are registered in
/// order, failing loudly (a GPU provider that cannot start is an error, not
/// a silent slow fallback).
fn providers(
    options: &RuntimeOptions,
) -> Result<Vec<ep::ExecutionProviderDispatch>, BackboneError> {
    let list = &options.providers;
    let mut out = Vec::new();
    for p in list {
        let available = match p {
            Provider::Tensorrt => ep::TensorRT::is_available(),
            Provider::Cuda => ep::CUDA::is_available(),
            Provider::Cpu => ep::CPU::is_available(),
        }
        .map_err(ort_err("listing the library's execution providers"))?;
        if !available {
            return Err(BackboneError::Onnxruntime(format!(
                "onnxruntime: execution provider `{}` ({}) is not in the loaded library; \
                 use a build of onnxruntime that has it (JetPack's onnxruntime-gpu for \
                 tensorrt/cuda) or remove it from [inference] onnxruntime_providers",
                p.as_str(),
                p.ort_name()
            )));
        }
        out.push(match p {
            Provider::Tensorrt => {
                // FP16 on the f32 file (docs/jetson-gpu.md); engines cached.
                let mut trt = ep::TensorRT::default().with_fp16(true);
                if let Some(dir) = &options.cache_dir {
                    trt = trt
                        .with_engine_cache(true)
                        .with_engine_cache_path(dir.display());
                }
                trt.build().error_on_failure()
            }
            Provider::Cuda => ep::CUDA::default().build().error_on_failure(),
            Provider::Cpu => ep::CPU::default().build().error_on_failure(),
        });
    }
    Ok(out)
}

impl OrtRuntime {
    pub fn load(
        bytes: &[u8],
        spec: &BackboneSpec,
        options: &RuntimeOptions,
    ) -> Result<Self, BackboneError> {
        let loaded = load_library(options)?;
        let eps = providers(options)?;
        let count = options.sessions.max(1);
        let names: Vec<&str> = options.providers.iter().map(|p| p.as_str()).collect();
        let mut runtime = Self {
            idle: Mutex::new(Vec::with_capacity(count)),
            returned: Condvar::new(),
            input: spec.input_name.clone(),
            output: spec.feature_output.clone(),
            shape: [
                1,
                3,
                spec.input_size[1] as usize,
                spec.input_size[0] as usize,
            ],
            about: format!(
                "onnxruntime {} ({}; providers {}; {count} session(s))",
                loaded.version,
                loaded.path.display(),
                names.join(", ")
            ),
        };
        let zeros = vec![0f32; runtime.shape.iter().product()];
        for i in 0..count {
            let mut session = Session::builder(&loaded.env)
                .and_then(|b| Ok(b.with_execution_providers(&eps)?))
                .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::All)?))
                .and_then(|b| Ok(b.with_intra_threads(1)?))
                .and_then(|b| Ok(b.with_inter_threads(1)?))
                // Idle workers must not spin a core (a board shares them).
                .and_then(|b| Ok(b.with_intra_op_spinning(false)?))
                .and_then(|mut b| b.commit_from_memory(bytes))
                .map_err(|e| BackboneError::Load(anyhow::anyhow!("onnxruntime session: {e}")))?;
            if i == 0 {
                // Checked before the first run, which looks the output up by name.
                for name in [&spec.input_name, &spec.feature_output] {
                    let known = session.inputs().iter().any(|t| t.name() == name.as_str())
                        || session.outputs().iter().any(|t| t.name() == name.as_str());
                    if !known {
                        return Err(BackboneError::Load(anyhow::anyhow!(
                            "the ONNX graph has no tensor `{name}` (the manifest's input/feature names)"
                        )));
                    }
                }
            }
            // A provider can be listed and still fail at its first kernel (a
            // CUDA build for another GPU): prove every session once, now.
            runtime.run_on(&mut session, &zeros).map_err(|e| {
                BackboneError::Onnxruntime(format!(
                    "onnxruntime: the first inference failed ({e}); the execution providers \
                     cannot run this model here"
                ))
            })?;
            runtime
                .idle
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .push(session);
        }
        Ok(runtime)
    }

    fn run_on(&self, session: &mut Session, input: &[f32]) -> Result<Vec<f32>, ort::Error> {
        let tensor = TensorRef::from_array_view((self.shape, input))?;
        let outputs = session.run(ort::inputs![self.input.as_str() => tensor])?;
        let (_, data) = outputs[self.output.as_str()].try_extract_tensor::<f32>()?;
        Ok(data.to_vec())
    }

    fn take(&self) -> Session {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(s) = idle.pop() {
                return s;
            }
            idle = self.returned.wait(idle).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn give_back(&self, session: Session) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(session);
        self.returned.notify_one();
    }
}

impl Runtime for OrtRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Onnxruntime
    }

    fn describe(&self) -> String {
        self.about.clone()
    }

    fn run(&self, input: &[f32]) -> Result<Vec<f32>, BackboneError> {
        let mut session = self.take();
        let result = self.run_on(&mut session, input);
        self.give_back(session);
        result.map_err(|e| BackboneError::Run(anyhow::anyhow!("onnxruntime: {e}")))
    }
}
