//! The device a run uses, picked at run time: `cpu` (burn's `flex`, always built) or
//! `cuda[:N]` (burn-cuda with fusion and autotune, in builds with the `cuda` feature).
//!
//! burn-cuda loads the driver (`libcuda`) and compiles its kernels with NVRTC against the
//! toolkit's headers when first used; a missing driver is a panic in a worker thread. So a
//! CUDA device is checked before use (driver library, toolkit headers, a first tiny tensor
//! operation) and every failure becomes an error that says what is missing.

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
}

impl FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceSpec::Cuda(n)),
                _ => Err(format!("unknown device {s:?}: use cpu, cuda or cuda:N")),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// The CPU training backend.
pub type CpuBackend = Autodiff<Flex>;

/// The CUDA training backend (fused, autotuned).
#[cfg(feature = "cuda")]
pub type CudaBackend = Autodiff<burn_cuda::Cuda>;

/// Work that runs on whichever backend the device needs.
pub trait BackendTask {
    type Output;
    fn run<B: TrainBackend>(self, device: B::Device) -> Result<Self::Output>;
}

/// Whether this build can use CUDA.
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

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
    use burn::tensor::Tensor;

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
    let probe = device.clone();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let ok = std::panic::catch_unwind(move || {
        Tensor::<burn_cuda::Cuda, 1>::ones([4], &probe)
            .sum()
            .into_data()
            .to_vec::<f32>()
            .ok()
    });
    std::panic::set_hook(hook);
    match ok {
        Ok(Some(v)) if v.first() == Some(&4.0) => Ok(device),
        Ok(_) => bail!("--device cuda:{n}: a first test computation on the GPU gave a wrong result"),
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let hint = if driver_listed() {
                ""
            } else {
                " (no libcuda.so.1 in the loader's cache or LD_LIBRARY_PATH: is an NVIDIA driver installed?)"
            };
            bail!("--device cuda:{n}: the device is not usable: {msg}{hint}")
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
        assert!("tpu".parse::<DeviceSpec>().unwrap_err().contains("cpu, cuda or cuda:N"));
        assert_eq!(DeviceSpec::Cuda(1).to_string(), "cuda:1");
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
