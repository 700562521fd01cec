//! Platform descriptions: devices (each a hardware profile and a number of
//! streams), the links between them, and the home device where a model's
//! inputs arrive and its outputs are wanted.
//!
//! A platform file is JSON:
//!
//! ```json
//! { "name": "cpu-h100", "description": "...", "home": "cpu0",
//!   "devices": [ { "name": "cpu0", "profile": "cpu", "streams": 2, "threads_per_stream": 1, "memory_bytes": 24e9 },
//!                { "name": "gpu0", "profile": "h100", "streams": 4, "memory_bytes": 80e9 } ],
//!   "links": [ { "name": "pcie5", "between": ["cpu0", "gpu0"], "bandwidth": 50e9, "latency": 10e-6 } ] }
//! ```
//!
//! `profile` is a roofline profile as `--target` takes it (a built-in name, a
//! profile file, or `cpu`: the calibrated profile when `eqopt calibrate` wrote
//! one). `threads_per_stream` picks a calibrated CPU profile's figures for
//! that many threads (each stream is a worker group of that many cores).
//! Links are symmetric; two devices without a link cannot exchange data.

use crate::cost::HardwareProfile;
use crate::error::{Error, Result};
use serde::Deserialize;

/// The platforms shipped with eqopt (`platforms/*.json`), usable by name.
pub const BUILTIN_PLATFORMS: &[(&str, &str)] = &[
    ("cpu", include_str!("../../platforms/cpu.json")),
    ("cpu-h100", include_str!("../../platforms/cpu-h100.json")),
    ("4xh100-nvlink", include_str!("../../platforms/4xh100-nvlink.json")),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlatformFile {
    name: String,
    #[serde(default)]
    description: String,
    home: String,
    devices: Vec<DeviceFile>,
    #[serde(default)]
    links: Vec<LinkFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceFile {
    name: String,
    profile: String,
    streams: usize,
    #[serde(default)]
    threads_per_stream: Option<usize>,
    memory_bytes: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkFile {
    name: String,
    between: [String; 2],
    bandwidth: f64,
    latency: f64,
}

/// One device: the roofline of one of its streams, how many streams it runs
/// concurrently, and its memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Device {
    /// Its name in the platform.
    pub name: String,
    /// The roofline profile of one stream.
    pub profile: HardwareProfile,
    /// Streams that run kernels concurrently (at least 1).
    pub streams: usize,
    /// For a CPU, the cores of each stream's worker group (1 when not given).
    pub threads_per_stream: usize,
    /// Bytes of memory.
    pub memory_bytes: u64,
}

/// A symmetric link between two devices.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// Its name (`pcie5`, `nvlink4`, ...).
    pub name: String,
    /// The two devices, by index.
    pub between: [usize; 2],
    /// Bytes per second in each direction.
    pub bandwidth: f64,
    /// Seconds per transfer before the first byte arrives.
    pub latency: f64,
}

/// A platform: devices and links.
#[derive(Clone, Debug, PartialEq)]
pub struct Platform {
    /// Its name.
    pub name: String,
    /// Where the numbers come from.
    pub description: String,
    /// Devices, in the file's order.
    pub devices: Vec<Device>,
    /// Links.
    pub links: Vec<Link>,
    /// The device where inputs arrive and outputs are returned.
    pub home: usize,
}

impl Platform {
    /// A built-in platform by name, or a platform file by path.
    pub fn load(name_or_path: &str) -> Result<Platform> {
        let text = match BUILTIN_PLATFORMS.iter().find(|(n, _)| *n == name_or_path) {
            Some((_, json)) => json.to_string(),
            None if std::path::Path::new(name_or_path).is_file() => {
                std::fs::read_to_string(name_or_path).map_err(|e| Error::io(name_or_path, e))?
            }
            None => {
                let names: Vec<&str> = BUILTIN_PLATFORMS.iter().map(|(n, _)| *n).collect();
                return Err(Error::Platform {
                    platform: name_or_path.into(),
                    problem: format!("not a built-in platform ({}) nor a platform file", names.join(", ")),
                });
            }
        };
        Platform::parse(&text, name_or_path)
    }

    /// Parses platform JSON; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Platform> {
        let bad = |problem: String| Error::Platform {
            platform: source.into(),
            problem,
        };
        let f: PlatformFile = serde_json::from_str(text).map_err(|e| bad(format!("invalid platform JSON: {e}")))?;
        if f.devices.is_empty() {
            return Err(bad("no devices".into()));
        }
        let mut devices = Vec::with_capacity(f.devices.len());
        for d in &f.devices {
            if devices.iter().any(|x: &Device| x.name == d.name) {
                return Err(bad(format!("device \"{}\" is named twice", d.name)));
            }
            if d.streams == 0 || d.threads_per_stream == Some(0) {
                return Err(bad(format!(
                    "device \"{}\": streams and threads_per_stream must be at least 1",
                    d.name
                )));
            }
            if !(d.memory_bytes.is_finite() && d.memory_bytes > 0.0) {
                return Err(bad(format!(
                    "device \"{}\": memory_bytes must be positive, found {}",
                    d.name, d.memory_bytes
                )));
            }
            let (profile, _) = crate::calibrate::resolve_target(&d.profile)
                .map_err(|e| bad(format!("device \"{}\": profile \"{}\": {e}", d.name, d.profile)))?;
            let profile = match d.threads_per_stream {
                Some(t) => profile.for_threads(t),
                None => profile,
            };
            devices.push(Device {
                name: d.name.clone(),
                profile,
                streams: d.streams,
                threads_per_stream: d.threads_per_stream.unwrap_or(1),
                memory_bytes: d.memory_bytes as u64,
            });
        }
        let index = |name: &str| devices.iter().position(|d| d.name == name);
        let home = index(&f.home).ok_or_else(|| bad(format!("home \"{}\" is not a device", f.home)))?;
        let mut links = Vec::with_capacity(f.links.len());
        for l in &f.links {
            let (Some(a), Some(b)) = (index(&l.between[0]), index(&l.between[1])) else {
                return Err(bad(format!("link \"{}\" joins {:?}: not both devices", l.name, l.between)));
            };
            if a == b {
                return Err(bad(format!("link \"{}\" joins \"{}\" to itself", l.name, l.between[0])));
            }
            if !(l.bandwidth.is_finite() && l.bandwidth > 0.0 && l.latency.is_finite() && l.latency >= 0.0) {
                return Err(bad(format!(
                    "link \"{}\": bandwidth must be positive and latency non-negative",
                    l.name
                )));
            }
            links.push(Link {
                name: l.name.clone(),
                between: [a, b],
                bandwidth: l.bandwidth,
                latency: l.latency,
            });
        }
        Ok(Platform {
            name: f.name,
            description: f.description,
            devices,
            links,
            home,
        })
    }

    /// The link between devices `a` and `b` (`None` when there is none; a
    /// device needs none to itself).
    pub fn link(&self, a: usize, b: usize) -> Option<&Link> {
        self.links
            .iter()
            .find(|l| (l.between[0] == a && l.between[1] == b) || (l.between[0] == b && l.between[1] == a))
    }

    /// Seconds to move `bytes` from device `a` to device `b`: 0 on the same
    /// device, latency plus bytes over bandwidth on a link, `None` without one.
    pub fn transfer_time(&self, a: usize, b: usize, bytes: u64) -> Option<f64> {
        if a == b {
            return Some(0.0);
        }
        self.link(a, b).map(|l| l.latency + bytes as f64 / l.bandwidth)
    }

    /// The same platform with only the devices `keep` (indices, in order), the
    /// links among them, and `home` set to the first kept device unless the
    /// home is kept.
    pub fn subset(&self, keep: &[usize]) -> Platform {
        let devices = keep.iter().map(|&d| self.devices[d].clone()).collect();
        let new = |d: usize| keep.iter().position(|&k| k == d);
        let links = self
            .links
            .iter()
            .filter_map(|l| {
                Some(Link {
                    between: [new(l.between[0])?, new(l.between[1])?],
                    ..l.clone()
                })
            })
            .collect();
        Platform {
            name: self.name.clone(),
            description: self.description.clone(),
            devices,
            links,
            home: new(self.home).unwrap_or(0),
        }
    }
}
