//! Device acquisition: the best hardware adapter, else a software one, an override by
//! environment or flag, or a caller's own `wgpu::Device` and `Queue`.

use super::waiting::{block_on, delivery, take_deferred_error};
use crate::error::{Error, Result};

/// Hint printed whenever no adapter can be found.
pub const SOFTWARE_ADAPTER_HINT: &str = "no usable GPU adapter was found. On a machine without a GPU, install \
     Mesa's software Vulkan driver (lavapipe): Debian/Ubuntu `apt-get install mesa-vulkan-drivers`, \
     Fedora `dnf install mesa-vulkan-drivers`";

/// Environment variable naming the adapter to use (case-insensitive substring of its name).
pub const ENV_ADAPTER: &str = "WGQUANT_ADAPTER";
/// Environment variable naming the backends to use (e.g. `vulkan`, `metal`, `dx12`, `gl`).
pub const ENV_BACKEND: &str = "WGQUANT_BACKEND";
/// Environment variable listing optional device features not to request, comma-separated:
/// `coop_matrix`, `subgroup`, `f16`, `timestamp` (to compare variants, or to step around a
/// driver bug in one of them).
pub const ENV_DISABLE: &str = "WGQUANT_DISABLE";

/// The optional features that [`ENV_DISABLE`] can turn off, by name.
fn feature_by_name(name: &str) -> Option<wgpu::Features> {
    Some(match name {
        "coop_matrix" => wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX,
        "subgroup" => wgpu::Features::SUBGROUP,
        "f16" => wgpu::Features::SHADER_F16,
        "timestamp" => {
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
        }
        _ => return None,
    })
}

/// Parse a comma-separated list of feature names for [`ENV_DISABLE`].
pub(crate) fn parse_disabled_features(list: &str) -> Result<wgpu::Features> {
    let mut features = wgpu::Features::empty();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        features |= feature_by_name(&name.to_ascii_lowercase()).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{ENV_DISABLE}: unknown feature '{name}' (known: coop_matrix, subgroup, f16, timestamp)"
            ))
        })?;
    }
    Ok(features)
}

/// How to choose an adapter.
#[derive(Clone, Debug, Default)]
pub struct DeviceOptions {
    /// Use the first adapter whose name contains this (case-insensitive).
    pub adapter: Option<String>,
    /// Restrict to these backends (default: all).
    pub backends: Option<wgpu::Backends>,
    /// Optional features not to request, as [`ENV_DISABLE`] names them (checked when the
    /// device is created).
    pub disable: Option<String>,
}

impl DeviceOptions {
    /// Options from `WGQUANT_ADAPTER`, `WGQUANT_BACKEND` and `WGQUANT_DISABLE`, if set.
    pub fn from_env() -> Self {
        DeviceOptions {
            adapter: std::env::var(ENV_ADAPTER).ok().filter(|s| !s.is_empty()),
            backends: std::env::var(ENV_BACKEND)
                .ok()
                .filter(|s| !s.is_empty())
                .map(|s| wgpu::Backends::from_comma_list(&s)),
            disable: std::env::var(ENV_DISABLE).ok().filter(|s| !s.is_empty()),
        }
    }

    /// These options with an explicit adapter name, if given (a flag beats the environment).
    pub fn with_adapter(mut self, name: Option<&str>) -> Self {
        if let Some(n) = name {
            self.adapter = Some(n.to_string());
        }
        self
    }
}

/// Every adapter wgpu can see on the chosen backends (native only: a browser offers one
/// adapter, through [`GpuContext::request`]).
#[cfg(not(target_arch = "wasm32"))]
pub fn enumerate_adapters(backends: Option<wgpu::Backends>) -> Vec<wgpu::Adapter> {
    let backends = backends.unwrap_or(wgpu::Backends::all());
    let instance = wgpu::Instance::new(
        wgpu::InstanceDescriptor {
            backends,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        }
        .with_env(),
    );
    pollster::block_on(instance.enumerate_adapters(backends))
}

/// Ranks adapters: hardware before software, native APIs before GL.
#[cfg(not(target_arch = "wasm32"))]
fn adapter_rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let device = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    };
    (device, backend)
}

/// Whether the adapter's name contains `name`, ignoring case ([`DeviceOptions::adapter`]'s
/// rule on every target).
fn name_contains(info: &wgpu::AdapterInfo, name: &str) -> bool {
    info.name.to_lowercase().contains(&name.to_lowercase())
}

/// Pick an adapter by the options: a named one, else the best ranked. Without a backend
/// choice, the native APIs (Vulkan, Metal, DX12) are tried before GL. Native only.
#[cfg(not(target_arch = "wasm32"))]
pub fn choose_adapter(opts: &DeviceOptions) -> Result<wgpu::Adapter> {
    let mut adapters = match opts.backends {
        Some(b) => enumerate_adapters(Some(b)),
        None => {
            let native = enumerate_adapters(Some(wgpu::Backends::PRIMARY));
            if native.is_empty() {
                enumerate_adapters(None)
            } else {
                native
            }
        }
    };
    if adapters.is_empty() {
        return Err(Error::NoAdapter(match opts.backends {
            Some(b) => format!(
                "no adapter on the backends {b:?} ({ENV_BACKEND} restricts them; unset it to \
                 try all). {SOFTWARE_ADAPTER_HINT}"
            ),
            None => SOFTWARE_ADAPTER_HINT.to_string(),
        }));
    }
    if let Some(name) = &opts.adapter {
        let names: Vec<String> = adapters
            .iter()
            .map(|a| {
                let i = a.get_info();
                format!("{} ({:?})", i.name, i.backend)
            })
            .collect();
        return adapters
            .into_iter()
            .find(|a| name_contains(&a.get_info(), name))
            .ok_or_else(|| {
                Error::NoAdapter(format!(
                    "no adapter's name contains '{name}'; available: {}",
                    names.join(", ")
                ))
            });
    }
    adapters.sort_by_key(|a| adapter_rank(&a.get_info()));
    Ok(adapters.remove(0))
}

/// The browser's WebGPU adapter: its high-performance one, else its fallback (software)
/// adapter, which browsers offer only when asked for it; checked against `opts.adapter`.
#[cfg(target_arch = "wasm32")]
async fn browser_adapter(opts: &DeviceOptions) -> Result<wgpu::Adapter> {
    if !wgpu::util::is_browser_webgpu_supported().await {
        return Err(Error::NoAdapter(
            "this browser has no WebGPU (navigator.gpu is missing): use a browser that \
             ships it (Chrome/Edge 113+, Firefox 141+, Safari 26+), or enable it (Chromium \
             on Linux: --enable-unsafe-webgpu)"
                .into(),
        ));
    }
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::BROWSER_WEBGPU,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let mut request = wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    };
    let adapter = match instance.request_adapter(&request).await {
        Ok(a) => a,
        Err(first) => {
            request.force_fallback_adapter = true;
            instance.request_adapter(&request).await.map_err(|e| {
                Error::NoAdapter(format!(
                    "the browser's WebGPU offers no adapter ({first}; asked for its fallback \
                     adapter: {e}); its GPU may be blocklisted (see chrome://gpu)"
                ))
            })?
        }
    };
    if let Some(name) = &opts.adapter {
        let info = adapter.get_info();
        if !name_contains(&info, name) {
            return Err(Error::NoAdapter(format!(
                "the browser's adapter is '{}', whose name does not contain '{name}'",
                info.name
            )));
        }
    }
    Ok(adapter)
}

/// The optional features worth enabling on a device made from `adapter`, of those it offers:
/// subgroups (faster GEMV reductions), f16, timestamp queries (benchmarks), and cooperative
/// matrices where the adapter can run the tensor-core GEMM
/// ([`adapter_supports_coop_gemm`](super::plan::adapter_supports_coop_gemm)). wgquant works without
/// any of them; kernels pick their variants from what the device has. When the result holds
/// `EXPERIMENTAL_COOPERATIVE_MATRIX`, the device descriptor needs
/// `experimental_features: unsafe { wgpu::ExperimentalFeatures::enabled() }`.
pub fn recommended_features(adapter: &wgpu::Adapter) -> wgpu::Features {
    let useful = wgpu::Features::TIMESTAMP_QUERY
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
        | wgpu::Features::SHADER_F16
        | wgpu::Features::SUBGROUP;
    let mut features = adapter.features() & useful;
    if super::plan::adapter_supports_coop_gemm(adapter) {
        features |= super::plan::coop_matrix_features();
    }
    features
}

/// A device and queue wgquant runs on, with what it knows about them.
#[derive(Clone, Debug)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    /// The adapter's description (from the device when the caller brought their own).
    pub info: wgpu::AdapterInfo,
}

impl GpuContext {
    /// Acquire an adapter by `opts` and create a device with the adapter's full limits
    /// (blocking; on the web, await [`request`](Self::request) instead).
    pub fn new(opts: &DeviceOptions) -> Result<Self> {
        block_on("GpuContext::request", Self::request(opts))
    }

    /// [`new`](Self::new) as a future, for every target. In a browser it asks WebGPU for
    /// its high-performance adapter, else its fallback (software) adapter.
    pub async fn request(opts: &DeviceOptions) -> Result<Self> {
        let disabled = match &opts.disable {
            Some(list) => parse_disabled_features(list)?,
            None => wgpu::Features::empty(),
        };
        #[cfg(not(target_arch = "wasm32"))]
        let adapter = choose_adapter(opts)?;
        #[cfg(target_arch = "wasm32")]
        let adapter = browser_adapter(opts).await?;
        Self::create(&adapter, disabled).await
    }

    /// Acquire the default adapter, honouring `WGQUANT_ADAPTER` / `WGQUANT_BACKEND`.
    pub fn from_env() -> Result<Self> {
        Self::new(&DeviceOptions::from_env())
    }

    /// Create a device on `adapter` with its full limits and the features wgquant can use
    /// (blocking; on the web, await [`from_adapter_async`](Self::from_adapter_async)).
    pub fn from_adapter(adapter: &wgpu::Adapter) -> Result<Self> {
        block_on(
            "GpuContext::from_adapter_async",
            Self::from_adapter_async(adapter),
        )
    }

    /// [`from_adapter`](Self::from_adapter) as a future.
    pub async fn from_adapter_async(adapter: &wgpu::Adapter) -> Result<Self> {
        Self::create(adapter, wgpu::Features::empty()).await
    }

    async fn create(adapter: &wgpu::Adapter, disabled: wgpu::Features) -> Result<Self> {
        let info = adapter.get_info();
        let mut required_features = recommended_features(adapter).difference(disabled);
        if !required_features.contains(super::plan::coop_matrix_features()) {
            // The tensor-core GEMM is all the cooperative-matrix feature is requested for.
            required_features.remove(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);
        }
        let experimental_features =
            if required_features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
                // SAFETY: only the cooperative-matrix feature is experimental here, requested
                // only where the adapter offers the configuration the tensor-core GEMM uses;
                // we accept wgpu's caveats on experimental features for it.
                unsafe { wgpu::ExperimentalFeatures::enabled() }
            } else {
                wgpu::ExperimentalFeatures::disabled()
            };
        let desc = wgpu::DeviceDescriptor {
            label: Some("wgquant"),
            required_features,
            required_limits: adapter.limits(),
            experimental_features,
            ..Default::default()
        };
        let (device, queue) =
            adapter
                .request_device(&desc)
                .await
                .map_err(|e| Error::RequestDevice {
                    adapter: info.name.clone(),
                    reason: e.to_string(),
                })?;
        #[allow(unused_mut)]
        let mut ctx = GpuContext {
            device,
            queue,
            info,
        };
        #[cfg(target_arch = "wasm32")]
        {
            // A device of ours: the browser's late errors are reported by the next readback.
            ctx.device
                .on_uncaptured_error(std::sync::Arc::new(|e: wgpu::Error| {
                    super::waiting::web::defer(e.to_string())
                }));
            if ctx.info.name.is_empty() {
                // Browsers keep the adapter's description to themselves.
                ctx.info.name = match ctx.is_cpu() {
                    true => "browser WebGPU fallback adapter",
                    false => "browser WebGPU adapter",
                }
                .into();
            }
        }
        Ok(ctx)
    }

    /// Use a device and queue the caller already created (with the caller's features and limits).
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        let info = device.adapter_info();
        GpuContext {
            device,
            queue,
            info,
        }
    }

    /// A one-line description: name, backend, device type.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.backend, self.info.device_type
        )
    }

    /// Whether the device runs on the CPU (lavapipe, WARP, SwiftShader).
    pub fn is_cpu(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Encode with `encode` into a new encoder and submit it, turning wgpu validation errors
    /// into [`Error::Gpu`] (for the one-line helpers; kernels themselves never submit).
    pub fn submit_checked(&self, encode: impl FnOnce(&mut wgpu::CommandEncoder)) -> Result<()> {
        block_on(
            "GpuContext::submit_checked_async",
            self.submit_checked_async(encode),
        )
    }

    /// [`submit_checked`](Self::submit_checked) as a future.
    pub async fn submit_checked_async(
        &self,
        encode: impl FnOnce(&mut wgpu::CommandEncoder),
    ) -> Result<()> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        encode(&mut enc);
        self.queue.submit([enc.finish()]);
        match scope.pop().await {
            Some(e) => Err(Error::Gpu(e.to_string())),
            None => Ok(()),
        }
    }

    /// Wait for all submitted work (natively; on the web this returns at once: await
    /// [`wait_async`](Self::wait_async)).
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Gpu(e.to_string()))
    }

    /// Wait for all submitted work, on every target.
    pub async fn wait_async(&self) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.wait()
        }
        #[cfg(target_arch = "wasm32")]
        {
            let (done, finished) = delivery::<()>();
            self.queue.on_submitted_work_done(move || done(()));
            finished.await;
            take_deferred_error().map_or(Ok(()), Err)
        }
    }

    /// Copy a buffer's first `len` f32 values back to the CPU (waits for the GPU; on the web
    /// await [`read_f32_async`](Self::read_f32_async)).
    pub fn read_f32(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        block_on(
            "GpuContext::read_f32_async",
            self.read_f32_async(buffer, len),
        )
    }

    /// [`read_f32`](Self::read_f32) as a future.
    pub async fn read_f32_async(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        let bytes = self.read_bytes_async(buffer, len * 4).await?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect())
    }

    /// Copy a buffer's first `len` f16 values back to the CPU (waits for the GPU); the buffer
    /// must hold `2 len` bytes rounded up to a multiple of 4.
    pub fn read_f16(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<half::f16>> {
        block_on(
            "GpuContext::read_f16_async",
            self.read_f16_async(buffer, len),
        )
    }

    /// [`read_f16`](Self::read_f16) as a future.
    pub async fn read_f16_async(
        &self,
        buffer: &wgpu::Buffer,
        len: usize,
    ) -> Result<Vec<half::f16>> {
        let bytes = self
            .read_bytes_async(buffer, (len * 2).next_multiple_of(4))
            .await?;
        Ok(bytes
            .chunks_exact(2)
            .take(len)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]))
            .collect())
    }

    /// Copy a buffer's first `len` bytes (a multiple of 4) back to the CPU (waits for the GPU;
    /// on the web await [`read_bytes_async`](Self::read_bytes_async)).
    pub fn read_bytes(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<u8>> {
        block_on(
            "GpuContext::read_bytes_async",
            self.read_bytes_async(buffer, len),
        )
    }

    /// [`read_bytes`](Self::read_bytes) as a future. On the web it also returns the errors
    /// the browser reported since the last readback (building kernels cannot wait for them).
    pub async fn read_bytes_async(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<u8>> {
        let bytes = len as u64;
        if bytes > buffer.size() || !bytes.is_multiple_of(4) {
            return Err(Error::Shape(format!(
                "reading {len} bytes from a buffer of {} bytes",
                buffer.size()
            )));
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgquant readback"),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        enc.copy_buffer_to_buffer(buffer, 0, &staging, 0, bytes);
        self.queue.submit([enc.finish()]);
        self.read_mapped_async(&staging, len).await
    }

    /// Map `staging` (a `MAP_READ` buffer that submitted work fills), wait for the GPU, copy
    /// out its first `len` bytes and unmap it again for reuse.
    pub(crate) fn read_mapped(&self, staging: &wgpu::Buffer, len: usize) -> Result<Vec<u8>> {
        block_on(
            "GpuContext::read_bytes_async",
            self.read_mapped_async(staging, len),
        )
    }

    /// [`read_mapped`](Self::read_mapped) as a future.
    pub(crate) async fn read_mapped_async(
        &self,
        staging: &wgpu::Buffer,
        len: usize,
    ) -> Result<Vec<u8>> {
        let (mapped, mapping) = delivery();
        staging.slice(..).map_async(wgpu::MapMode::Read, mapped);
        self.wait()?;
        let mapping = mapping.await;
        if let Some(e) = take_deferred_error() {
            staging.unmap();
            return Err(e);
        }
        mapping.map_err(|e| Error::Gpu(format!("mapping the readback buffer failed: {e}")))?;
        let view = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| Error::Gpu(e.to_string()))?;
        let out = view[..len].to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }

    /// A storage buffer holding `data`.
    pub fn storage_buffer(&self, label: &str, data: &[f32]) -> wgpu::Buffer {
        self.storage_buffer_bytes(label, bytemuck::cast_slice(data))
    }

    /// A storage buffer holding f16 `data` (for [`Kernels::matmul_f16`](super::Kernels::matmul_f16)),
    /// its size rounded up to a multiple of 4 bytes.
    pub fn storage_buffer_f16(&self, label: &str, data: &[half::f16]) -> wgpu::Buffer {
        self.storage_buffer_bytes(label, bytemuck::cast_slice(data))
    }

    fn storage_buffer_bytes(&self, label: &str, data: &[u8]) -> wgpu::Buffer {
        use wgpu::util::DeviceExt;
        let contents: &[u8] = if data.is_empty() { &[0u8; 4] } else { data };
        // create_buffer_init pads the size to a multiple of 4 bytes.
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            })
    }

    /// An uninitialised storage buffer of `len` f32.
    pub fn output_buffer(&self, label: &str, len: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_features_parse_by_name_and_reject_unknown_names() {
        let f = parse_disabled_features(" coop_matrix, F16 ,,").unwrap();
        assert_eq!(
            f,
            wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX | wgpu::Features::SHADER_F16
        );
        assert!(parse_disabled_features("timestamp")
            .unwrap()
            .contains(wgpu::Features::TIMESTAMP_QUERY));
        assert_eq!(
            parse_disabled_features("").unwrap(),
            wgpu::Features::empty()
        );
        let err = parse_disabled_features("subgroup,tensor_cores").unwrap_err();
        assert!(err.to_string().contains("tensor_cores"), "{err}");
    }
}
