//! The statistics every report and benchmark uses, in one place so that a figure means the same
//! wherever it is printed: mean, median, nearest-rank quantiles, the geometric mean of ratios and
//! the 95% confidence interval of a mean (Student's t). Empty input gives NaN, never a panic.

/// Arithmetic mean; NaN when empty.
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Median (the mean of the middle two for an even count); NaN when empty.
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The `q` quantile (0..=1) by nearest rank: the sorted value at round((n - 1) q); NaN when empty.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize]
}

/// Geometric mean (of speedups); NaN when any value is not a positive number.
pub fn gmean(v: &[f64]) -> f64 {
    if v.iter().any(|x| !(x.is_finite() && *x > 0.0)) {
        return f64::NAN;
    }
    mean(&v.iter().map(|x| x.ln()).collect::<Vec<_>>()).exp()
}

/// Sample standard deviation (n - 1); NaN below two values.
pub fn std_dev(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return f64::NAN;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

/// Two-sided 97.5% quantile of Student's t with `df` degrees of freedom (table to 30, then the
/// normal's 1.96 approached through 1.96 + 2.4/df).
pub fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => T[df - 1],
        _ => 1.96 + 2.4 / df as f64,
    }
}

/// Half-width of the 95% confidence interval of the mean (Student's t); NaN below two values.
pub fn ci95(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return f64::NAN;
    }
    let m = mean(v);
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
    t975(v.len() - 1) * (var / v.len() as f64).sqrt()
}

/// The finite values of `v`.
pub fn finite(v: impl IntoIterator<Item = f64>) -> Vec<f64> {
    v.into_iter().filter(|x| x.is_finite()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(mean(&[1.0, 2.0, 6.0]), 3.0);
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(quantile(&[3.0, 1.0, 2.0, 4.0, 5.0], 0.5), 3.0);
        assert_eq!(quantile(&[3.0, 1.0, 2.0, 4.0, 5.0], 1.0), 5.0);
        assert!((gmean(&[1.0, 4.0]) - 2.0).abs() < 1e-12);
        assert!(gmean(&[1.0, 0.0]).is_nan());
        assert!((std_dev(&[1.0, 3.0]) - 2f64.sqrt()).abs() < 1e-12);
        // n = 2: t(1) = 12.706, sd = sqrt(2), sqrt(n) = sqrt(2)
        assert!((ci95(&[1.0, 3.0]) - 12.706).abs() < 1e-9);
        assert_eq!(t975(40), 1.96 + 2.4 / 40.0);
    }

    #[test]
    fn empty_and_short_inputs_give_nan() {
        for f in [mean, median, gmean, std_dev, ci95] {
            assert!(f(&[]).is_nan());
        }
        assert!(quantile(&[], 0.5).is_nan());
        assert!(ci95(&[1.0]).is_nan());
    }
}
