//! wgquant in a web page: the library's verify suite and benchmark on the browser's WebGPU
//! device, exported to the page's JavaScript (`web/main.js`) by wasm-bindgen. Every function
//! returns a promise; results travel as JSON text (`CaseResult::to_json`,
//! `BenchRow::to_json`), the same fields the CLI's `--json` output has.

use std::cell::RefCell;
use std::future::Future;
use wasm_bindgen::prelude::*;
use wgquant::bench::{self, BenchConfig};
use wgquant::gpu::{AdapterProfile, DeviceOptions, GpuContext, KernelConfig};
use wgquant::gpu::{GpuWeight, Kernels, Operand};
use wgquant::{verify, Error, Format, QuantizedTensor};

thread_local! {
    /// The device `acquire` created (a page has one thread).
    static CONTEXT: RefCell<Option<GpuContext>> = const { RefCell::new(None) };
}

fn js_error(e: Error) -> JsValue {
    js_sys::Error::new(&e.to_string()).into()
}

fn context() -> Result<GpuContext, JsValue> {
    CONTEXT
        .with(|c| c.borrow().clone())
        .ok_or_else(|| js_sys::Error::new("call acquire() first").into())
}

/// Formats from a comma-separated list of names (`q4_0,q8_0`, `all`).
fn parse_formats(list: &str) -> Result<Vec<Format>, JsValue> {
    let names: Vec<&str> = list.split(',').filter(|s| !s.trim().is_empty()).collect();
    Format::parse_list(&names).map_err(js_error)
}

/// Call the page's `progress(done, total, json)`; a throwing callback does not stop the work.
fn report(progress: &js_sys::Function, done: usize, total: usize, json: &serde_json::Value) {
    let _ = progress.call3(
        &JsValue::NULL,
        &JsValue::from(done as u32),
        &JsValue::from(total as u32),
        &JsValue::from(json.to_string()),
    );
}

/// Let the browser paint between steps (a readback alone may resolve without a frame).
fn next_frame() -> impl Future<Output = ()> {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = js_sys::global()
            .unchecked_into::<WindowLike>()
            .set_timeout(&resolve, 0);
    });
    let future = wasm_bindgen_futures::JsFuture::from(promise);
    async move {
        let _ = future.await;
    }
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str);

    /// `window` or a worker's global: only its `setTimeout`.
    type WindowLike;
    #[wasm_bindgen(method, js_name = setTimeout)]
    fn set_timeout(this: &WindowLike, handler: &js_sys::Function, ms: i32) -> JsValue;
}

/// Panics (bugs: bad input gets errors) go to the console with their message.
#[wasm_bindgen(start)]
fn start() {
    std::panic::set_hook(Box::new(|info| {
        console_error(&format!("wgquant panicked: {info}"))
    }));
}

/// Create the device (the browser's high-performance WebGPU adapter, else its fallback
/// adapter) and describe it as JSON: name, backend, device type, driver, whether it is a
/// fallback (software) adapter, the features the device got and some limits.
#[wasm_bindgen]
pub async fn acquire() -> Result<String, JsValue> {
    let ctx = GpuContext::request(&DeviceOptions::default())
        .await
        .map_err(js_error)?;
    let info = &ctx.info;
    let limits = ctx.device.limits();
    let features: Vec<String> = ctx
        .device
        .features()
        .iter_names()
        .map(|(name, _)| name.to_ascii_lowercase())
        .collect();
    let json = serde_json::json!({
        "name": info.name,
        "backend": format!("{:?}", info.backend),
        "device_type": format!("{:?}", info.device_type),
        "driver": info.driver,
        "driver_info": info.driver_info,
        "fallback": ctx.is_cpu(),
        "features": features,
        "kernel_config": format!("{:?}", KernelConfig::for_device(&ctx.device)),
        "limits": {
            "max_buffer_size": limits.max_buffer_size,
            "max_storage_buffer_binding_size": limits.max_storage_buffer_binding_size,
            "max_compute_workgroup_storage_size": limits.max_compute_workgroup_storage_size,
            "max_compute_invocations_per_workgroup": limits.max_compute_invocations_per_workgroup,
            "max_compute_workgroups_per_dimension": limits.max_compute_workgroups_per_dimension,
            "max_storage_buffers_per_shader_stage": limits.max_storage_buffers_per_shader_stage,
        },
    });
    CONTEXT.with(|c| *c.borrow_mut() = Some(ctx));
    Ok(json.to_string())
}

/// The kernel variants to verify: `device` (what `Kernels::new` picks here) or `gpu` (what a
/// hardware GPU with this device's features runs: the buffer GEMV and the tiled GEMM, not a
/// software adapter's texture GEMV), so a software adapter checks a GPU's shaders too.
fn kernel_config(ctx: &GpuContext, kernels: &str) -> Result<KernelConfig, JsValue> {
    match kernels {
        "" | "device" => Ok(KernelConfig::for_device(&ctx.device)),
        "gpu" => {
            let mut profile = AdapterProfile::of(&ctx.device);
            profile.info.device_type = wgpu::DeviceType::Other;
            Ok(KernelConfig::untuned_for(&profile))
        }
        other => {
            Err(js_sys::Error::new(&format!("unknown kernels '{other}': device or gpu")).into())
        }
    }
}

/// Run the verify suite (`verify::run_format_with_async`: every kernel against the f64 CPU
/// reference computed here in wasm, outputs poisoned and guarded) for each format of
/// `formats` with the variants `kernels` names ([`kernel_config`]), calling
/// `progress(done, total, case_json)` after every case; resolves to the JSON array of all
/// cases.
#[wasm_bindgen]
pub async fn verify(
    formats: String,
    kernels: String,
    progress: js_sys::Function,
) -> Result<String, JsValue> {
    let ctx = context()?;
    let formats = parse_formats(&formats)?;
    let config = kernel_config(&ctx, &kernels)?;
    let total: usize = formats
        .iter()
        .map(|&f| verify::suite_len(&ctx.device, f, &config))
        .sum();
    let mut cases = Vec::new();
    for format in formats {
        verify::run_format_with_async(&ctx, format, config, |r| {
            cases.push(r.to_json());
            report(&progress, cases.len(), total, &cases[cases.len() - 1]);
        })
        .await
        .map_err(js_error)?;
        next_frame().await;
    }
    Ok(serde_json::Value::Array(cases).to_string())
}

/// The page's short benchmark: GEMV (one column) and GEMM (32 columns) per format, with the
/// f32 kernel of the same run as the baseline (`bench::run_async`), calling
/// `progress(done, total, row_json)` after every row; resolves to the JSON array of rows. On
/// a fallback adapter (a CPU) one 2048 x 2048 weight, on a GPU 4096 x 4096, rotated through
/// copies that exceed a last-level cache.
#[wasm_bindgen]
pub async fn bench(formats: String, progress: js_sys::Function) -> Result<String, JsValue> {
    let ctx = context()?;
    let formats = parse_formats(&formats)?;
    let cpu = ctx.is_cpu();
    let cfg = BenchConfig {
        formats,
        shapes: vec![if cpu { (2048, 2048) } else { (4096, 4096) }],
        batches: vec![1, 32],
        warmup: 2,
        iterations: if cpu { 5 } else { 20 },
        bytes_in_flight: if cpu { 64 << 20 } else { 256 << 20 },
        int8_activations: false,
        f16_activations: true,
        kernels: KernelConfig::for_device(&ctx.device),
    };
    let mut rows = Vec::new();
    bench::run_async(&ctx, &cfg, |done, total, row| {
        rows.push(row.to_json());
        report(&progress, done, total, &rows[rows.len() - 1]);
    })
    .await
    .map_err(js_error)?;
    Ok(serde_json::Value::Array(rows).to_string())
}

/// Check that errors reach the caller on the web, where nothing can block: a blocking
/// readback is refused with `Error::NeedsAsync`, and a dispatch the browser rejects (its
/// activations in a buffer without STORAGE usage) makes the next awaited readback fail with
/// the browser's message instead of returning the poisoned output. Resolves to JSON
/// `{"needs_async": message, "validation": message}`; rejects if either went unreported.
#[wasm_bindgen]
pub async fn error_check() -> Result<String, JsValue> {
    let ctx = context()?;
    let (rows, k) = (8, 64);
    let y = ctx.output_buffer("error check y", rows);
    let needs_async = match ctx.read_f32(&y, rows) {
        Err(e @ Error::NeedsAsync(_)) => e.to_string(),
        other => return Err(js_sys::Error::new(&format!("read_f32 gave {other:?}")).into()),
    };
    let w =
        QuantizedTensor::quantize(Format::Q4_0, &vec![0.5; rows * k], rows, k).map_err(js_error)?;
    let weight = GpuWeight::upload(&ctx, &w).map_err(js_error)?;
    let kernels = Kernels::new(&ctx.device, Format::Q4_0).map_err(js_error)?;
    let x = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("error check x without STORAGE"),
        size: (k * 4) as u64,
        usage: wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let validation = match kernels.matmul(
        &weight,
        &x,
        Operand {
            buffer: &y,
            offset: 0,
        },
        1,
    ) {
        // Refused before the GPU saw it: as good.
        Err(e) => e.to_string(),
        Ok(op) => {
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            op.encode(&mut enc);
            ctx.queue.submit([enc.finish()]);
            match ctx.read_f32_async(&y, rows).await {
                Err(e) => e.to_string(),
                Ok(v) => {
                    return Err(js_sys::Error::new(&format!(
                        "an invalid dispatch went unreported; read back {v:?}"
                    ))
                    .into())
                }
            }
        }
    };
    // The next readback is clean again.
    ctx.read_f32_async(&y, rows).await.map_err(js_error)?;
    Ok(serde_json::json!({"needs_async": needs_async, "validation": validation}).to_string())
}
