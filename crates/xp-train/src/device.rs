//! Picking where to train. Burn's CUDA backend panics in a worker thread when the driver
//! library is missing, so CUDA is probed first (the driver loaded and initialised on this
//! thread, a panic caught) and a missing GPU becomes an error or, for `auto`, the CPU.

use xp_config::Device;

use crate::error::TrainError;

/// A backend and device to train on: [`select`] picks one from the config's `device`;
/// benchmarks name one with [`train_with`](crate::train_with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The CPU with Burn's Flex backend.
    Flex,
    /// The CPU with Burn's NdArray backend.
    NdArray,
    /// A CUDA device by index (needs the `cuda` feature).
    Cuda(usize),
}

impl Engine {
    /// The CPU backend: Flex. NdArray's runs are not bit-reproducible (with it the exact-resume
    /// tests, 4 epochs == 2 + 2, fail), and with the release profile Flex is also the faster one
    /// on our models (`cargo xtask bench train` measures both).
    pub const CPU: Engine = Engine::Flex;
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Engine::Flex => f.write_str("cpu (Flex)"),
            Engine::NdArray => f.write_str("cpu (NdArray)"),
            Engine::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// Number of usable CUDA devices, or why there are none.
pub fn cuda_devices() -> Result<usize, String> {
    #[cfg(feature = "cuda")]
    {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let probe = std::panic::catch_unwind(|| {
            cudarc::driver::result::init()
                .map_err(|e| format!("the CUDA driver did not start: {e:?}"))?;
            cudarc::driver::result::device::get_count()
                .map_err(|e| format!("the CUDA driver cannot count devices: {e:?}"))
        });
        std::panic::set_hook(previous);
        match probe {
            Ok(Ok(n)) => Ok(n.max(0) as usize),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                Err("no CUDA driver library (libcuda) could be loaded on this machine".to_owned())
            }
        }
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err("this build has no CUDA support (build with `--features cuda`)".to_owned())
    }
}

/// Resolves the config's `device`: `auto` is CUDA when compiled in and usable, else the CPU.
/// The second value says why, for the console.
pub fn select(device: Device) -> Result<(Engine, String), TrainError> {
    match device {
        Device::Cpu => Ok((Engine::CPU, "cpu (as configured)".to_owned())),
        Device::Auto => match cuda_devices() {
            Ok(n) if n > 0 => Ok((
                Engine::Cuda(0),
                "cuda:0 (auto: a CUDA device is usable)".to_owned(),
            )),
            Ok(_) => Ok((Engine::CPU, "cpu (auto: no CUDA device found)".to_owned())),
            Err(why) => Ok((Engine::CPU, format!("cpu (auto: {why})"))),
        },
        Device::Cuda(index) => {
            let index = index.unwrap_or(0) as usize;
            match cuda_devices() {
                Ok(n) if index < n => Ok((Engine::Cuda(index), format!("cuda:{index}"))),
                Ok(n) => Err(TrainError::Device(format!(
                    "device = \"cuda:{index}\" but this machine has {n} CUDA device(s); use device = \"auto\" or \"cpu\""
                ))),
                Err(why) => Err(TrainError::Device(format!(
                    "device = \"cuda\" but {why}; use device = \"auto\" or \"cpu\""
                ))),
            }
        }
    }
}
