//! The device a run uses, picked at run time: `cpu` (burn's `flex`, always built),
//! `cuda[:N]` (burn-cuda with fusion and autotune, in builds with the `cuda` feature) or
//! `wgpu[:N]` (burn-wgpu with fusion and autotune: Vulkan on Linux, Metal on macOS,
//! DirectX 12 on Windows, in builds with the `wgpu` feature).
//!
//! Both GPU backends load their driver when first used, and a missing one is a panic in a
//! worker thread. So a GPU device is checked before use (burn-cuda: the driver library, the
//! toolkit headers NVRTC compiles against; burn-wgpu: the adapters the graphics API lists),
//! then a first tiny tensor operation runs, and every failure becomes an error that says what
//! is missing.

use std::fmt;
use std::str::FromStr;

use crate::kernels::TrainBackend;
use anyhow::{Result, bail};
use burn::backend::flex::FlexDevice;
use burn::backend::{Autodiff, Flex};

/// Where to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
    /// `wgpu` is burn-wgpu's default adapter (the high-performance one, or what
    /// `CUBECL_WGPU_DEFAULT_DEVICE` names); `wgpu:N` is the N-th adapter in the order
    /// [`wgpu_adapters::list`] gives them.
    Wgpu(Option<usize>),
}

impl FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            "wgpu" => Ok(DeviceSpec::Wgpu(None)),
            _ => {
                let index = |prefix: &str| s.strip_prefix(prefix).map(str::parse::<usize>);
                match (index("cuda:"), index("wgpu:")) {
                    (Some(Ok(n)), _) => Ok(DeviceSpec::Cuda(n)),
                    (_, Some(Ok(n))) => Ok(DeviceSpec::Wgpu(Some(n))),
                    _ => Err(format!("unknown device {s:?}: use cpu, cuda, cuda:N, wgpu or wgpu:N")),
                }
            }
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceSpec::Wgpu(None) => write!(f, "wgpu"),
            DeviceSpec::Wgpu(Some(n)) => write!(f, "wgpu:{n}"),
        }
    }
}

/// The CPU training backend.
pub type CpuBackend = Autodiff<Flex>;

/// The CUDA training backend (fused, autotuned).
#[cfg(feature = "cuda")]
pub type CudaBackend = Autodiff<burn_cuda::Cuda>;

/// The wgpu training backend (fused, autotuned).
#[cfg(feature = "wgpu")]
pub type WgpuBackend = Autodiff<burn_wgpu::Wgpu>;

/// Work that runs on whichever backend the device needs.
pub trait BackendTask {
    type Output;
    fn run<B: TrainBackend>(self, device: B::Device) -> Result<Self::Output>;
}

/// Whether this build can use CUDA.
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

/// Whether this build can use wgpu.
pub const WGPU_BUILT: bool = cfg!(feature = "wgpu");

/// One line per device this build can use, for `--list-devices`: the CPU, CUDA (whether
/// built), and each adapter wgpu finds (whether built).
pub fn describe() -> Vec<String> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut lines = vec![format!(
        "cpu: burn's flex backend with facepipe's kernels ({threads} threads)"
    )];
    lines.push(if CUDA_BUILT {
        "cuda, cuda:N: the N-th NVIDIA GPU (checked when used: driver, toolkit headers)".into()
    } else {
        "cuda: not in this build (cargo build --release --features cuda)".into()
    });
    #[cfg(feature = "wgpu")]
    {
        let all = wgpu_adapters::list();
        if all.is_empty() {
            lines.push("wgpu: no adapter found (no Vulkan, Metal or DirectX 12 driver?)".into());
        }
        for (i, a) in all.iter().enumerate() {
            lines.push(format!("wgpu:{i}: {a}"));
        }
    }
    #[cfg(not(feature = "wgpu"))]
    lines.push("wgpu: not in this build (cargo build --release --features wgpu)".into());
    lines
}

/// Runs `task` on the device `spec` names.
pub fn dispatch<T: BackendTask>(spec: DeviceSpec, task: T) -> Result<T::Output> {
    match spec {
        DeviceSpec::Cpu => {
            crate::kernels::alloc::tune();
            task.run::<CpuBackend>(FlexDevice)
        }
        #[cfg(feature = "cuda")]
        DeviceSpec::Cuda(n) => {
            let device = cuda_device(n)?;
            task.run::<CudaBackend>(device)
        }
        #[cfg(not(feature = "cuda"))]
        DeviceSpec::Cuda(_) => bail!(
            "--device {spec}: this build has no CUDA support; build with `cargo build --release --features cuda` \
             (see the README) or use --device cpu"
        ),
        #[cfg(feature = "wgpu")]
        DeviceSpec::Wgpu(n) => {
            let device = wgpu_adapters::device(n)?;
            task.run::<WgpuBackend>(device)
        }
        #[cfg(not(feature = "wgpu"))]
        DeviceSpec::Wgpu(_) => bail!(
            "--device {spec}: this build has no wgpu support; build with `cargo build --release --features wgpu` \
             (see the README) or use --device cpu"
        ),
    }
}

/// Header directories NVRTC needs (`cuda_runtime.h`), as cubecl-cuda looks for them.
pub fn cuda_include_dirs() -> Vec<std::path::PathBuf> {
    let mut roots: Vec<std::path::PathBuf> = std::env::var_os("CUDA_PATH").map(Into::into).into_iter().collect();
    roots.extend(["/usr/local/cuda", "/opt/cuda"].map(std::path::PathBuf::from));
    roots.into_iter().map(|r| r.join("include")).collect()
}

/// Checks the driver, the toolkit and the device, then returns it.
#[cfg(feature = "cuda")]
fn cuda_device(n: usize) -> Result<burn_cuda::CudaDevice> {
    let dirs = cuda_include_dirs();
    if !dirs.iter().any(|d| d.join("cuda_runtime.h").is_file()) {
        let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        bail!(
            "--device cuda:{n}: no CUDA toolkit headers (cuda_runtime.h) in {}; burn-cuda compiles its kernels at run \
             time and needs them: install the CUDA toolkit or set CUDA_PATH",
            shown.join(", ")
        );
    }
    let device = burn_cuda::CudaDevice::new(n);
    match first_sum::<burn_cuda::Cuda>(&device) {
        Ok(Some(4.0)) => Ok(device),
        Ok(_) => bail!("--device cuda:{n}: a first test computation on the GPU gave a wrong result"),
        Err(msg) => {
            let hint = if driver_listed() {
                ""
            } else {
                " (no libcuda.so.1 in the loader's cache or LD_LIBRARY_PATH: is an NVIDIA driver installed?)"
            };
            bail!("--device cuda:{n}: the device is not usable: {msg}{hint}")
        }
    }
}

/// Sums four ones on `device`, the first computation a GPU backend runs: `Ok(None)` when the
/// result cannot be read back, `Err` with the panic's message when the backend panics (as
/// burn's GPU backends do for a missing driver or an unusable adapter).
#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn first_sum<B: burn::tensor::backend::Backend>(device: &B::Device) -> std::result::Result<Option<f32>, String> {
    use burn::tensor::Tensor;
    let probe = device.clone();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        Tensor::<B, 1>::ones([4], &probe)
            .sum()
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .ok()
            .and_then(|v| v.first().copied())
    }));
    std::panic::set_hook(hook);
    ok.map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

/// wgpu's adapters: listing them, picking one, checking it.
#[cfg(feature = "wgpu")]
pub mod wgpu_adapters {
    use anyhow::{Result, bail};
    use burn_wgpu::WgpuDevice;
    use burn_wgpu::graphics::{AutoGraphicsApi, GraphicsApi};
    use wgpu::DeviceType;

    /// One adapter as the graphics API reports it.
    #[derive(Clone, Debug)]
    pub struct Adapter {
        pub name: String,
        pub kind: DeviceType,
        pub backend: wgpu::Backend,
        pub driver: String,
    }

    impl Adapter {
        fn of(a: &wgpu::Adapter) -> Adapter {
            let i = a.get_info();
            let driver = [i.driver, i.driver_info]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            Adapter {
                name: i.name,
                kind: i.device_type,
                backend: i.backend,
                driver,
            }
        }
    }

    impl std::fmt::Display for Adapter {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let kind = match self.kind {
                DeviceType::DiscreteGpu => "discrete GPU",
                DeviceType::IntegratedGpu => "integrated GPU",
                DeviceType::VirtualGpu => "virtual GPU",
                DeviceType::Cpu => "software, on the CPU",
                DeviceType::Other => "other",
            };
            write!(f, "{} ({kind}, {:?}", self.name, self.backend)?;
            if !self.driver.is_empty() {
                write!(f, ", {}", self.driver)?;
            }
            write!(f, ")")
        }
    }

    fn instance() -> (wgpu::Instance, wgpu::Backend) {
        let backend = AutoGraphicsApi::backend();
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: backend.into(),
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        (instance, backend)
    }

    /// The adapters of the graphics API burn-wgpu uses on this system (Vulkan on Linux,
    /// Metal on macOS, DirectX 12 on Windows), in the order `wgpu:N` counts them.
    pub fn list() -> Vec<Adapter> {
        let (instance, backend) = instance();
        block_on(instance.enumerate_adapters(backend.into()))
            .iter()
            .map(Adapter::of)
            .collect()
    }

    /// The adapter burn-wgpu takes for `wgpu` (its default device: the high-performance one).
    fn default_adapter() -> Option<Adapter> {
        let (instance, _) = instance();
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
        };
        block_on(instance.request_adapter(&options))
            .ok()
            .map(|a| Adapter::of(&a))
    }

    /// What to install when the graphics API lists no adapter.
    const NO_ADAPTER: &str = if cfg!(target_os = "linux") {
        "is a Vulkan driver installed? (the Vulkan loader libvulkan1 and the GPU's driver: the NVIDIA \
         driver's, or Mesa's mesa-vulkan-drivers for AMD and Intel, whose lavapipe also runs Vulkan on \
         the CPU)"
    } else if cfg!(target_os = "macos") {
        "Metal needs macOS 10.13 or later on a Mac with a Metal GPU"
    } else {
        "is the GPU's driver installed?"
    };

    /// Picks the adapter `n` names (burn-wgpu's default when `None`), checks it with a first
    /// computation and logs its name.
    pub fn device(n: Option<usize>) -> Result<WgpuDevice> {
        let spec = super::DeviceSpec::Wgpu(n);
        let all = list();
        let api = format!("{:?}", AutoGraphicsApi::backend());
        if all.is_empty() {
            bail!("--device {spec}: {api} lists no adapter: {NO_ADAPTER}");
        }
        let listed = || {
            all.iter()
                .enumerate()
                .map(|(i, a)| format!("wgpu:{i} {a}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let (device, adapter) = match n {
            None => {
                let named = std::env::var("CUBECL_WGPU_DEFAULT_DEVICE").ok();
                (
                    WgpuDevice::DefaultDevice,
                    named.map(|v| format!("CUBECL_WGPU_DEFAULT_DEVICE={v}")),
                )
            }
            Some(n) => {
                let Some(a) = all.get(n) else {
                    bail!("--device {spec}: {api} lists {} adapter(s): {}", all.len(), listed());
                };
                // burn-wgpu numbers adapters within their kind, in the order they are listed
                let k = all[..n].iter().filter(|b| b.kind == a.kind).count();
                let device = match a.kind {
                    DeviceType::DiscreteGpu => WgpuDevice::DiscreteGpu(k),
                    DeviceType::IntegratedGpu => WgpuDevice::IntegratedGpu(k),
                    DeviceType::VirtualGpu => WgpuDevice::VirtualGpu(k),
                    DeviceType::Cpu if k == 0 => WgpuDevice::Cpu,
                    _ => bail!(
                        "--device {spec}: burn-wgpu cannot select {a} by number; use --device wgpu with \
                         CUBECL_WGPU_DEFAULT_DEVICE (adapters: {})",
                        listed()
                    ),
                };
                (device, Some(a.to_string()))
            }
        };
        match super::first_sum::<burn_wgpu::Wgpu>(&device) {
            Ok(Some(4.0)) => {}
            Ok(_) => bail!("--device {spec}: a first test computation on the adapter gave a wrong result"),
            Err(msg) => bail!(
                "--device {spec}: the adapter is not usable: {msg} (adapters: {})",
                listed()
            ),
        }
        let shown = adapter
            .or_else(|| default_adapter().map(|a| a.to_string()))
            .unwrap_or_else(|| "burn-wgpu's default adapter".into());
        log::info!("--device {spec}: {shown}");
        Ok(device)
    }

    /// Runs a future to completion on this thread (wgpu's adapter queries are futures that
    /// native backends resolve at once).
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        use std::sync::Arc;
        use std::task::{Context, Poll, Wake, Waker};
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            match f.as_mut().poll(&mut cx) {
                Poll::Ready(v) => return v,
                Poll::Pending => std::thread::park(),
            }
        }
    }
}

/// Whether the CUDA driver library is where the dynamic loader would find it (a hint for
/// error messages; the real test is using the device).
pub fn driver_listed() -> bool {
    let in_cache = std::fs::read("/etc/ld.so.cache")
        .map(|b| b.windows(12).any(|w| w == b"libcuda.so.1"))
        .unwrap_or(false);
    let in_path = std::env::var_os("LD_LIBRARY_PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("libcuda.so.1").exists()))
        .unwrap_or(false);
    in_cache || in_path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_and_print() {
        assert_eq!("cpu".parse(), Ok(DeviceSpec::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceSpec::Cuda(0)));
        assert_eq!("cuda:2".parse(), Ok(DeviceSpec::Cuda(2)));
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        assert!(
            "tpu"
                .parse::<DeviceSpec>()
                .unwrap_err()
                .contains("cpu, cuda, cuda:N, wgpu or wgpu:N")
        );
        assert_eq!(DeviceSpec::Cuda(1).to_string(), "cuda:1");
        assert_eq!("wgpu".parse(), Ok(DeviceSpec::Wgpu(None)));
        assert_eq!("wgpu:1".parse(), Ok(DeviceSpec::Wgpu(Some(1))));
        assert!("wgpu:".parse::<DeviceSpec>().is_err() && "wgpu:-1".parse::<DeviceSpec>().is_err());
        assert_eq!(DeviceSpec::Wgpu(Some(2)).to_string(), "wgpu:2");
        assert_eq!(DeviceSpec::Wgpu(None).to_string(), "wgpu");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        struct Nothing;
        impl BackendTask for Nothing {
            type Output = ();
            fn run<B: TrainBackend>(self, _device: B::Device) -> Result<()> {
                Ok(())
            }
        }
        let e = dispatch(DeviceSpec::Cuda(0), Nothing).unwrap_err().to_string();
        assert!(e.contains("--features cuda"), "{e}");
        dispatch(DeviceSpec::Cpu, Nothing).unwrap();
    }
}
