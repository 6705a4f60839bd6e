//! taskgate in the browser: wasm-bindgen bindings over [`taskgate::session::Session`] for the
//! page in `web/` (see `web/app.js`). Built for wasm32 by `web/build.sh`; natively this crate
//! is empty.
//!
//! Every method that reads the GPU returns a Promise and awaits the readback (WebGPU's
//! `mapAsync`); nothing blocks the browser's thread. Errors reject with a JS `Error` whose
//! message names the file, line or field at fault. Results are JSON strings.

#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Promise;
use taskgate::gpu::{AdapterRequest, Gpu};
use taskgate::session::{Session, TrainSettings};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str);
}

fn js_error(error: anyhow::Error) -> JsValue {
    JsError::new(&format!("{error:#}")).into()
}

/// A panic is a bug: say what it was on the console before wasm traps with "unreachable".
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        console_error(&format!("taskgate panicked: {info}"));
    }));
}

type Shared = Rc<RefCell<Option<Session>>>;

/// One WebGPU device and at most one loaded model.
#[wasm_bindgen]
pub struct TaskgateWeb {
    gpu: Gpu,
    session: Shared,
}

/// Runs `body` on the session when no other call holds it, as a Promise of its value.
/// The borrow is held across the awaits on purpose: a call made meanwhile gets "busy" from
/// `try_borrow_mut` instead of seeing a half-done step.
#[allow(clippy::await_holding_refcell_ref)]
fn with_session<F>(session: &Shared, body: F) -> Promise
where
    F: AsyncFnOnce(&mut Session) -> anyhow::Result<JsValue> + 'static,
{
    let session = Rc::clone(session);
    future_to_promise(async move {
        let mut guard = session.try_borrow_mut().map_err(|_| busy())?;
        let Some(session) = guard.as_mut() else {
            return Err(js_error(anyhow::anyhow!("no model loaded yet")));
        };
        body(session).await.map_err(js_error)
    })
}

impl TaskgateWeb {
    /// Runs `body` on the loaded session now (synchronous calls).
    fn with_loaded<R>(
        &self,
        body: impl FnOnce(&mut Session) -> anyhow::Result<R>,
    ) -> Result<R, JsValue> {
        let mut slot = self.session.try_borrow_mut().map_err(|_| busy())?;
        let session = slot
            .as_mut()
            .ok_or_else(|| js_error(anyhow::anyhow!("load a model first")))?;
        body(session).map_err(js_error)
    }
}

fn busy() -> JsValue {
    js_error(anyhow::anyhow!(
        "busy: another taskgate call is still running; await it first"
    ))
}

#[wasm_bindgen]
impl TaskgateWeb {
    /// Opens the browser's WebGPU adapter (with all of its limits, as natively).
    pub async fn create() -> Result<TaskgateWeb, JsValue> {
        install_panic_hook();
        let gpu = Gpu::new(&AdapterRequest::default()).await.map_err(|e| {
            js_error(e.context(
                "WebGPU is not available in this browser (Chrome/Edge 113+, or Chromium with \
                 --enable-unsafe-webgpu)",
            ))
        })?;
        Ok(Self {
            gpu,
            session: Rc::default(),
        })
    }

    /// The adapter, its limits and features, as JSON (the form of `taskgate info --json`).
    #[wasm_bindgen(js_name = adapterInfo)]
    pub fn adapter_info(&self) -> Result<String, JsValue> {
        serde_json::to_string(&self.gpu.report()).map_err(|e| js_error(e.into()))
    }

    /// Loads a model directory from its three files' contents; returns its summary JSON.
    /// When the files are bad the previous model stays loaded; when the upload fails, no
    /// model is loaded.
    #[wasm_bindgen(js_name = loadModel)]
    pub fn load_model(
        &self,
        config_toml: String,
        weights: Vec<u8>,
        tokenizer_json: Vec<u8>,
    ) -> Result<String, JsValue> {
        let mut slot = self.session.try_borrow_mut().map_err(|_| busy())?;
        // Bad files leave the loaded model as it was; good ones replace it, the old model's
        // buffers freed before the new one is uploaded.
        let dir = Session::parse(&config_toml, &weights, tokenizer_json).map_err(js_error)?;
        *slot = None;
        let session = Session::upload(&self.gpu, dir).map_err(js_error)?;
        let summary = session.summary().to_string();
        *slot = Some(session);
        Ok(summary)
    }

    /// Every task's prediction for `text` (JSON, see `Session::predict`).
    pub fn predict(&self, text: String) -> Promise {
        with_session(&self.session, async move |s: &mut Session| {
            Ok(s.predict(&text).await?.to_string().into())
        })
    }

    /// Sets the fine-tuning data (JSONL text; `name`, the file's name, is used in errors);
    /// returns the example count per task.
    #[wasm_bindgen(js_name = setTrainingData)]
    pub fn set_training_data(
        &self,
        jsonl: String,
        name: Option<String>,
    ) -> Result<String, JsValue> {
        let source = name.as_deref().unwrap_or("train.jsonl");
        self.with_loaded(|s| Ok(s.set_training_data(&jsonl, source)?.to_string()))
    }

    /// Starts fine-tuning with settings JSON (`steps`, `lr`, `batch_size`, `warmup`, ...).
    #[wasm_bindgen(js_name = startTraining)]
    pub fn start_training(&self, settings_json: String) -> Result<(), JsValue> {
        let settings = TrainSettings::parse(&settings_json).map_err(js_error)?;
        self.with_loaded(|s| s.start_training(&settings))
    }

    /// One training step; resolves to its losses (JSON).
    #[wasm_bindgen(js_name = trainStep)]
    pub fn train_step(&self) -> Promise {
        with_session(&self.session, async move |s: &mut Session| {
            Ok(s.train_step().await?.to_string().into())
        })
    }

    /// The current weights as `model.safetensors` bytes (resolves to a Uint8Array).
    #[wasm_bindgen(js_name = exportSafetensors)]
    pub fn export_safetensors(&self) -> Promise {
        with_session(&self.session, async move |s: &mut Session| {
            let bytes = s.export_safetensors().await?;
            Ok(js_sys::Uint8Array::from(bytes.as_slice()).into())
        })
    }
}
