//! The numeric part of a function's baseline: each invocation as a vector of
//! robustly standardised features (duration, CPU share, memory, bytes, event
//! counts), clustered with linfa's k-means; an invocation is scored by its
//! distance to the nearest centre, relative to the distances the training
//! invocations of that cluster had.

use linfa::DatasetBase;
use linfa::traits::Fit;
use linfa_clustering::KMeans;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// Names of the features, in vector order.
pub const FEATURES: [&str; 11] = [
    "log duration",
    "CPU share of wall time",
    "log peak memory",
    "log bytes out",
    "log bytes in",
    "log DNS lookups",
    "log connections",
    "log child processes",
    "log file accesses",
    "log API calls",
    "cold start",
];
pub const NF: usize = FEATURES.len();

/// One invocation's raw measurements.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measures {
    pub duration_ms: f64,
    pub cpu_ms: Option<f64>,
    pub max_memory_mb: f64,
    pub bytes_out: f64,
    pub bytes_in: f64,
    pub dns: f64,
    pub net: f64,
    pub proc: f64,
    pub file: f64,
    pub api: f64,
    pub cold: bool,
}

impl Measures {
    /// The feature vector; a missing CPU figure takes the function's typical share.
    pub fn vector(&self, cpu_default: f64) -> [f64; NF] {
        let cpu = match self.cpu_ms {
            Some(c) if self.duration_ms > 0.0 => (c / self.duration_ms).clamp(0.0, 2.0),
            _ => cpu_default,
        };
        [
            self.duration_ms.max(0.0).ln_1p(),
            cpu,
            self.max_memory_mb.max(0.0).ln_1p(),
            self.bytes_out.max(0.0).ln_1p(),
            self.bytes_in.max(0.0).ln_1p(),
            self.dns.ln_1p(),
            self.net.ln_1p(),
            self.proc.ln_1p(),
            self.file.ln_1p(),
            self.api.ln_1p(),
            if self.cold { 1.0 } else { 0.0 },
        ]
    }
}

/// Per-function numeric model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NumericModel {
    /// Median of each feature.
    pub center: Vec<f64>,
    /// Robust scale of each feature (MAD * 1.4826, with a floor).
    pub scale: Vec<f64>,
    /// Typical CPU share, used when an invocation has no CPU figure.
    pub cpu_default: f64,
    /// k-means centres in standardised space.
    pub centroids: Vec<Vec<f64>>,
    /// Per centre: the 99.9th percentile of training distances to it.
    pub radius: Vec<f64>,
    /// Invocations the model was fitted on.
    pub n: usize,
}

/// Per-feature contribution cap, so one never-seen feature (a function that
/// never spawns, spawning once) does not dominate: that case has its own kind.
const Z_CAP: f64 = 8.0;
/// Smallest scale per feature: differences below it are noise.
const SCALE_FLOOR: [f64; NF] = [0.15, 0.05, 0.08, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.5];

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let idx = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[idx.min(v.len() - 1)]
}

impl NumericModel {
    /// Fits on the training invocations of one function (`None` when too few).
    pub fn fit(samples: &[Measures]) -> Option<NumericModel> {
        if samples.len() < 30 {
            return None;
        }
        let mut cpus: Vec<f64> = samples
            .iter()
            .filter_map(|m| {
                m.cpu_ms
                    .filter(|_| m.duration_ms > 0.0)
                    .map(|c| c / m.duration_ms)
            })
            .collect();
        let cpu_default = median(&mut cpus);
        let raw: Vec<[f64; NF]> = samples.iter().map(|m| m.vector(cpu_default)).collect();
        let mut center = vec![0.0; NF];
        let mut scale = vec![0.0; NF];
        let mut col = Vec::with_capacity(raw.len());
        for f in 0..NF {
            col.clear();
            col.extend(raw.iter().map(|r| r[f]));
            let m = median(&mut col);
            let mut dev: Vec<f64> = col.iter().map(|x| (x - m).abs()).collect();
            let mad = median(&mut dev) * 1.4826;
            center[f] = m;
            scale[f] = mad.max(SCALE_FLOOR[f]);
        }
        let z: Vec<[f64; NF]> = raw
            .iter()
            .map(|r| standardise(r, &center, &scale))
            .collect();
        let k = (samples.len() / 200).clamp(1, 4);
        let flat: Vec<f64> = z.iter().flat_map(|r| r.iter().copied()).collect();
        let arr = Array2::from_shape_vec((z.len(), NF), flat).ok()?;
        let ds = DatasetBase::from(arr);
        let km = KMeans::params(k)
            .max_n_iterations(60)
            .tolerance(1e-3)
            .n_runs(2)
            .fit(&ds)
            .ok()?;
        let centroids: Vec<Vec<f64>> = km.centroids().outer_iter().map(|r| r.to_vec()).collect();
        let mut per: Vec<Vec<f64>> = vec![Vec::new(); centroids.len()];
        for r in &z {
            let (c, d) = nearest(&centroids, r);
            per[c].push(d);
        }
        let mut all: Vec<f64> = per.iter().flatten().copied().collect();
        let global = quantile(&mut all, 0.999).max(1.0);
        let radius = per
            .iter_mut()
            .map(|d| {
                if d.len() < 50 {
                    global
                } else {
                    quantile(d, 0.999).max(1.0)
                }
            })
            .collect();
        Some(NumericModel {
            center,
            scale,
            cpu_default,
            centroids,
            radius,
            n: samples.len(),
        })
    }

    /// How far outside normal an invocation is: distance to the nearest
    /// centre over that centre's radius (above 1 = beyond 99.9% of training),
    /// and the features that contribute most.
    pub fn score(&self, m: &Measures) -> (f64, [usize; 2]) {
        let v = m.vector(self.cpu_default);
        let z = standardise(&v, &self.center, &self.scale);
        let (c, d) = nearest(&self.centroids, &z);
        let r = self.radius.get(c).copied().unwrap_or(1.0);
        // The two features farthest from the centre (the first of equals
        // first), in one pass.
        let cent = self.centroids.get(c);
        let dist = |f: usize| cent.map(|ct| (z[f] - ct[f]).abs()).unwrap_or(0.0);
        let (mut top, mut second) = ((0, dist(0)), (1, dist(1)));
        if second.1.total_cmp(&top.1).is_gt() {
            std::mem::swap(&mut top, &mut second);
        }
        for f in 2..NF {
            let df = dist(f);
            if df.total_cmp(&top.1).is_gt() {
                second = top;
                top = (f, df);
            } else if df.total_cmp(&second.1).is_gt() {
                second = (f, df);
            }
        }
        (d / r, [top.0, second.0])
    }

    /// A feature's value back in its own units, for explanations.
    pub fn describe(&self, f: usize, m: &Measures) -> String {
        let v = m.vector(self.cpu_default);
        let typical = self.center.get(f).copied().unwrap_or(0.0);
        match f {
            1 => format!(
                "CPU share {:.0}% (typical {:.0}%)",
                v[1] * 100.0,
                typical * 100.0
            ),
            10 => format!("cold start: {}", m.cold),
            _ => format!(
                "{} {:.0} (typical {:.0})",
                FEATURES[f].trim_start_matches("log "),
                v[f].exp_m1(),
                typical.exp_m1()
            ),
        }
    }
}

fn standardise(v: &[f64; NF], center: &[f64], scale: &[f64]) -> [f64; NF] {
    let mut z = [0.0; NF];
    for f in 0..NF {
        let c = center.get(f).copied().unwrap_or(0.0);
        let s = scale.get(f).copied().unwrap_or(1.0);
        z[f] = ((v[f] - c) / s).clamp(-Z_CAP, Z_CAP);
    }
    z
}

fn nearest(centroids: &[Vec<f64>], z: &[f64; NF]) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (i, c) in centroids.iter().enumerate() {
        let d: f64 = c
            .iter()
            .zip(z.iter())
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>();
        if d < best.1 {
            best = (i, d);
        }
    }
    (best.0, best.1.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(d: f64, cpu: f64, bytes: f64) -> Measures {
        Measures {
            duration_ms: d,
            cpu_ms: Some(cpu),
            max_memory_mb: 100.0,
            bytes_out: bytes,
            bytes_in: 500.0,
            dns: 1.0,
            net: 1.0,
            api: 2.0,
            ..Measures::default()
        }
    }

    #[test]
    fn far_invocations_score_high_and_normal_ones_low() {
        let mut s = Vec::new();
        for i in 0..2000 {
            let j = (i % 97) as f64 / 97.0;
            s.push(m(80.0 + 40.0 * j, 30.0 + 10.0 * j, 1500.0 + 900.0 * j));
        }
        let model = NumericModel::fit(&s).expect("fits");
        let (normal, _) = model.score(&m(100.0, 35.0, 2000.0));
        assert!(normal < 1.0, "normal scored {normal}");
        // A miner: long, CPU-bound.
        let (far, top) = model.score(&m(60_000.0, 59_000.0, 1500.0));
        assert!(far > 3.0, "far scored {far}");
        assert!(top.contains(&0) || top.contains(&1));
    }

    #[test]
    fn too_few_samples_fit_nothing() {
        assert!(NumericModel::fit(&[m(1.0, 1.0, 1.0)]).is_none());
    }
}
