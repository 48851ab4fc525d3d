//! Frequency spaces of a clip and batch resynthesis of masked mutants.
//!
//! Both spaces are grids of `(n_frames, n_bins)` cells; the `fft` space has a
//! single frame. A mask is a dense boolean grid (true = kept); masked cells are
//! set to `mask_value` (a real coefficient, 0 by default) and the waveform is
//! resynthesised with the inverse transform.

use std::sync::Arc;

use ndarray::{Array2, ArrayView1};
use num_complex::{Complex32, Complex64};
use rayon::prelude::*;
use realfft::{ComplexToReal, RealFftPlanner};

use crate::error::{param, CoreError, Result};
use crate::limits;

/// Which decomposition of the clip is analysed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpaceKind {
    /// Real FFT of the whole clip: `n/2 + 1` bins, one frame.
    Fft,
    /// Short-time Fourier transform with a periodic Hann window.
    Stft,
}

/// A clip decomposed into its frequency space, ready to synthesise mutants.
pub struct FrequencySpace {
    kind: SpaceKind,
    n_samples: usize,
    n_frames: usize,
    n_bins: usize,
    n_fft: usize,
    hop_length: usize,
    mask_value: f64,
    /// Coefficients, frame-major: `n_frames * n_bins`.
    coefficients: Vec<Complex64>,
    inverse: Arc<dyn ComplexToReal<f64>>,
    /// FFT only: the whole-clip inverse runs in single precision (twice as fast
    /// with SIMD; the round trip stays within 1e-5 of the input for |x| <= 1).
    inverse32: Option<Arc<dyn ComplexToReal<f32>>>,
    coefficients32: Vec<Complex32>,
    /// STFT only: windowed inverse of every frame (`n_frames * n_fft`).
    frame_signals: Vec<f64>,
    /// STFT only: the periodic Hann window and the overlap-added squared window.
    window: Vec<f64>,
    window_sum: Vec<f64>,
}

fn check_audio(audio: &ArrayView1<f32>) -> Result<()> {
    if audio.is_empty() {
        return Err(CoreError::Audio("audio is empty".into()));
    }
    if audio.iter().any(|v| !v.is_finite()) {
        return Err(CoreError::Audio(
            "audio contains NaN or infinite samples".into(),
        ));
    }
    Ok(())
}

/// The periodic Hann window of length `n`.
pub fn hann(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
        .collect()
}

/// Number of STFT frames of a clip: centred frames, one every `hop_length` samples.
pub fn stft_frames(n_samples: usize, hop_length: usize) -> usize {
    1 + n_samples / hop_length
}

impl FrequencySpace {
    /// The real FFT of the whole clip.
    pub fn fft(audio: ArrayView1<f32>, mask_value: f64) -> Result<Self> {
        check_audio(&audio)?;
        let n = audio.len();
        if n < 2 {
            return param("the fft space needs at least 2 samples");
        }
        if !mask_value.is_finite() {
            return param("mask_value must be finite");
        }
        // Input and spectrum in f64, their f32 copies, FFT scratch.
        limits::check(
            &format!("the fft space of {n} samples"),
            limits::bytes(n, 8 + 16 + 8 + 16 + 32),
        )?;
        let mut planner = RealFftPlanner::<f64>::new();
        let forward = planner.plan_fft_forward(n);
        let inverse = planner.plan_fft_inverse(n);
        let mut input: Vec<f64> = audio.iter().map(|&v| v as f64).collect();
        let mut spectrum = forward.make_output_vec();
        forward
            .process(&mut input, &mut spectrum)
            .map_err(|e| CoreError::Audio(e.to_string()))?;
        let n_bins = spectrum.len();
        let inverse32 = Some(RealFftPlanner::<f32>::new().plan_fft_inverse(n));
        let coefficients32 = spectrum
            .iter()
            .map(|c| Complex32::new(c.re as f32, c.im as f32))
            .collect();
        Ok(Self {
            kind: SpaceKind::Fft,
            n_samples: n,
            n_frames: 1,
            n_bins,
            n_fft: n,
            hop_length: n,
            mask_value,
            coefficients: spectrum,
            inverse,
            inverse32,
            coefficients32,
            frame_signals: Vec::new(),
            window: Vec::new(),
            window_sum: Vec::new(),
        })
    }

    /// The STFT of the clip: periodic Hann window of `n_fft` samples, frames every
    /// `hop_length` samples, centred (`n_fft / 2` zeros before the clip, zeros after
    /// it up to the last frame). Exactly invertible by weighted overlap-add.
    pub fn stft(
        audio: ArrayView1<f32>,
        n_fft: usize,
        hop_length: usize,
        mask_value: f64,
    ) -> Result<Self> {
        check_audio(&audio)?;
        if n_fft < 4 {
            return param(format!("n_fft must be at least 4, got {n_fft}"));
        }
        if hop_length == 0 || hop_length > n_fft / 2 {
            return param(format!(
                "hop_length must be in 1..={} (n_fft / 2) for an invertible STFT, got {hop_length}",
                n_fft / 2
            ));
        }
        if !mask_value.is_finite() {
            return param("mask_value must be finite");
        }
        let n = audio.len();
        let n_frames = stft_frames(n, hop_length);
        let pad = n_fft / 2;
        let n_bins = n_fft / 2 + 1;
        let padded_len = (n_frames - 1)
            .checked_mul(hop_length)
            .and_then(|v| v.checked_add(n_fft));
        let cells = n_frames.checked_mul(n_bins);
        let frame_samples = n_frames.checked_mul(n_fft);
        // Coefficients, frame signals, the padded clip and the window sum, per-frame buffers.
        limits::check(
            &format!(
                "the stft space of {n} samples (n_fft {n_fft}, hop_length {hop_length}, {n_frames} frames)"
            ),
            limits::total(&[
                cells.and_then(|c| limits::bytes(c, 16)),
                frame_samples.and_then(|c| limits::bytes(c, 8)),
                padded_len.and_then(|c| limits::bytes(c, 16)),
                limits::bytes(n_fft, 64),
            ]),
        )?;
        let padded_len = padded_len.expect("checked above");
        let mut padded = vec![0.0f64; padded_len];
        for (i, &v) in audio.iter().enumerate() {
            padded[pad + i] = v as f64;
        }
        let window = hann(n_fft);
        let mut planner = RealFftPlanner::<f64>::new();
        let forward = planner.plan_fft_forward(n_fft);
        let inverse = planner.plan_fft_inverse(n_fft);
        let mut coefficients = vec![Complex64::new(0.0, 0.0); n_frames * n_bins];
        let mut frame_signals = vec![0.0f64; n_frames * n_fft];
        coefficients
            .par_chunks_mut(n_bins)
            .zip(frame_signals.par_chunks_mut(n_fft))
            .enumerate()
            .try_for_each(|(t, (coef, sig))| -> Result<()> {
                let start = t * hop_length;
                let mut buf: Vec<f64> = (0..n_fft).map(|i| padded[start + i] * window[i]).collect();
                forward
                    .process(&mut buf, coef)
                    .map_err(|e| CoreError::Audio(e.to_string()))?;
                let mut spec = coef.to_vec();
                inverse
                    .process(&mut spec, sig)
                    .map_err(|e| CoreError::Audio(e.to_string()))?;
                let scale = 1.0 / n_fft as f64;
                for (s, w) in sig.iter_mut().zip(&window) {
                    *s *= scale * w;
                }
                Ok(())
            })?;
        let mut window_sum = vec![0.0f64; padded_len];
        for t in 0..n_frames {
            for i in 0..n_fft {
                window_sum[t * hop_length + i] += window[i] * window[i];
            }
        }
        if window_sum[pad..pad + n].iter().any(|&w| w < 1e-10) {
            return param("the STFT window does not cover every sample; lower hop_length");
        }
        Ok(Self {
            kind: SpaceKind::Stft,
            n_samples: n,
            n_frames,
            n_bins,
            n_fft,
            hop_length,
            mask_value,
            coefficients,
            inverse,
            inverse32: None,
            coefficients32: Vec::new(),
            frame_signals,
            window,
            window_sum,
        })
    }

    pub fn kind(&self) -> SpaceKind {
        self.kind
    }
    pub fn n_samples(&self) -> usize {
        self.n_samples
    }
    pub fn n_frames(&self) -> usize {
        self.n_frames
    }
    pub fn n_bins(&self) -> usize {
        self.n_bins
    }
    pub fn n_cells(&self) -> usize {
        self.n_frames * self.n_bins
    }
    pub fn n_fft(&self) -> usize {
        self.n_fft
    }
    pub fn hop_length(&self) -> usize {
        self.hop_length
    }
    pub fn mask_value(&self) -> f64 {
        self.mask_value
    }
    /// The coefficients, frame-major `(n_frames, n_bins)`.
    pub fn coefficients(&self) -> Array2<Complex64> {
        Array2::from_shape_vec((self.n_frames, self.n_bins), self.coefficients.clone())
            .expect("shape matches by construction")
    }

    /// Frequency in Hz of every bin.
    pub fn frequencies(&self, sample_rate: f64) -> Vec<f64> {
        (0..self.n_bins)
            .map(|k| k as f64 * sample_rate / self.n_fft as f64)
            .collect()
    }

    /// Scratch bytes one synthesis allocates.
    fn synthesis_bytes(&self) -> usize {
        match self.kind {
            SpaceKind::Fft => self.n_bins * 8 + self.n_samples * 4,
            SpaceKind::Stft => self.window_sum.len() * 8 + self.n_bins * 16 + self.n_fft * 8,
        }
    }

    /// Resynthesise one mutant from a dense mask of `n_cells` booleans.
    pub fn synthesize(&self, mask: &[bool]) -> Result<Vec<f32>> {
        if mask.len() != self.n_cells() {
            return param(format!(
                "mask has {} cells, the space has {}",
                mask.len(),
                self.n_cells()
            ));
        }
        let masked = Complex64::new(self.mask_value, 0.0);
        match self.kind {
            SpaceKind::Fft => {
                let masked = Complex32::new(self.mask_value as f32, 0.0);
                let mut spec: Vec<Complex32> = self
                    .coefficients32
                    .iter()
                    .zip(mask)
                    .map(|(&c, &m)| if m { c } else { masked })
                    .collect();
                let mut out = vec![0.0f32; self.n_samples];
                self.inverse32
                    .as_ref()
                    .expect("set for the fft space")
                    .process(&mut spec, &mut out)
                    .map_err(|e| CoreError::Parameter(e.to_string()))?;
                let scale = 1.0 / self.n_samples as f32;
                for v in &mut out {
                    *v *= scale;
                }
                Ok(out)
            }
            SpaceKind::Stft => {
                let (nb, nf, hop) = (self.n_bins, self.n_fft, self.hop_length);
                let mut acc = vec![0.0f64; self.window_sum.len()];
                let mut spec = vec![Complex64::new(0.0, 0.0); nb];
                let mut sig = vec![0.0f64; nf];
                let scale = 1.0 / nf as f64;
                for t in 0..self.n_frames {
                    let row = &mask[t * nb..(t + 1) * nb];
                    let kept = row.iter().filter(|&&m| m).count();
                    let dst = &mut acc[t * hop..t * hop + nf];
                    if kept == nb {
                        for (d, s) in dst
                            .iter_mut()
                            .zip(&self.frame_signals[t * nf..(t + 1) * nf])
                        {
                            *d += s;
                        }
                        continue;
                    }
                    if kept == 0 && self.mask_value == 0.0 {
                        continue;
                    }
                    let coef = &self.coefficients[t * nb..(t + 1) * nb];
                    for ((s, &c), &m) in spec.iter_mut().zip(coef).zip(row) {
                        *s = if m { c } else { masked };
                    }
                    self.inverse
                        .process(&mut spec, &mut sig)
                        .map_err(|e| CoreError::Parameter(e.to_string()))?;
                    for ((d, s), w) in dst.iter_mut().zip(&sig).zip(&self.window) {
                        *d += s * scale * w;
                    }
                }
                let pad = nf / 2;
                Ok((0..self.n_samples)
                    .map(|i| (acc[pad + i] / self.window_sum[pad + i]) as f32)
                    .collect())
            }
        }
    }

    /// Ok when a batch of `n` mutants can be synthesised within the memory limit: its rows and
    /// the output array plus one synthesis's buffers (more threads run at once only while they fit,
    /// so whether a batch can be made never depends on the thread count).
    pub fn check_synthesis(&self, n: usize) -> Result<()> {
        limits::check(
            &format!("synthesising {} mutants of {} samples", n, self.n_samples),
            limits::total(&[self.rows_bytes(n), limits::bytes(1, self.synthesis_bytes())]),
        )
    }

    fn rows_bytes(&self, n: usize) -> Option<u64> {
        limits::bytes(n, self.n_samples).and_then(|v| v.checked_mul(8))
    }

    /// Resynthesise a batch of masks in parallel (rayon), one row per mask.
    ///
    /// Each row depends on its mask alone: the result is the same whatever the thread count.
    pub fn synthesize_batch(&self, masks: &[Vec<bool>]) -> Result<Array2<f32>> {
        self.check_synthesis(masks.len())?;
        // as many syntheses at once as the threads and the memory left by the rows allow
        let rows_bytes = self.rows_bytes(masks.len()).unwrap_or(u64::MAX);
        let room = limits::memory_limit().saturating_sub(rows_bytes)
            / (self.synthesis_bytes().max(1) as u64);
        let threads = rayon::current_num_threads().max(1);
        let at_once = usize::try_from(room)
            .unwrap_or(usize::MAX)
            .clamp(1, threads);
        let chunk = if at_once >= threads {
            masks.len().max(1)
        } else {
            at_once
        };
        let mut rows: Vec<Vec<f32>> = Vec::with_capacity(masks.len());
        for part in masks.chunks(chunk) {
            let made: Vec<Vec<f32>> = part
                .par_iter()
                .map(|m| self.synthesize(m))
                .collect::<Result<_>>()?;
            rows.extend(made);
        }
        let mut out = Array2::<f32>::zeros((rows.len(), self.n_samples));
        for (mut dst, row) in out.outer_iter_mut().zip(rows) {
            dst.as_slice_mut()
                .expect("fresh arrays are contiguous")
                .copy_from_slice(&row);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array1;

    fn clip(n: usize) -> Array1<f32> {
        Array1::from_iter((0..n).map(|i| {
            let t = i as f32 / 16000.0;
            0.5 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()
                + 0.1 * ((i * 7919 % 101) as f32 / 101.0 - 0.5)
        }))
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn fft_keep_all_reconstructs() {
        let x = clip(16001);
        let s = FrequencySpace::fft(x.view(), 0.0).unwrap();
        let y = s.synthesize(&vec![true; s.n_cells()]).unwrap();
        let err = max_abs_diff(x.as_slice().unwrap(), &y);
        assert!(err <= 1e-5, "{err}");
    }

    #[test]
    fn stft_keep_all_reconstructs() {
        for (n, nfft, hop) in [(16000, 2048, 512), (3001, 256, 100), (10, 16, 8)] {
            let x = clip(n);
            let s = FrequencySpace::stft(x.view(), nfft, hop, 0.0).unwrap();
            let y = s.synthesize(&vec![true; s.n_cells()]).unwrap();
            let err = max_abs_diff(x.as_slice().unwrap(), &y);
            assert!(err <= 1e-5, "{err}");
        }
    }

    #[test]
    fn masking_everything_gives_silence() {
        let x = clip(4000);
        let s = FrequencySpace::stft(x.view(), 256, 64, 0.0).unwrap();
        let y = s.synthesize(&vec![false; s.n_cells()]).unwrap();
        assert!(y.iter().all(|v| v.abs() < 1e-12));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let x = Array1::<f32>::from(vec![0.0, f32::NAN]);
        assert!(FrequencySpace::fft(x.view(), 0.0).is_err());
        let x = Array1::<f32>::zeros(0);
        assert!(FrequencySpace::fft(x.view(), 0.0).is_err());
        let x = clip(100);
        assert!(FrequencySpace::stft(x.view(), 64, 40, 0.0).is_err());
        assert!(FrequencySpace::stft(x.view(), 2, 1, 0.0).is_err());
        let s = FrequencySpace::fft(x.view(), 0.0).unwrap();
        assert!(s.synthesize(&[true; 3]).is_err());
    }
}
