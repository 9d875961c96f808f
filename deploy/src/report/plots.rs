//! The run's plots (PNG, plotters), every one drawn from the raw records. The font is embedded
//! (DejaVu Sans Condensed, `deploy/assets/`), so no system font is needed.

use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::summary::{by_time, Summary};
use crate::error::{Error, Result};
use crate::run_records::Episode;
use casrap_common::record::TrainingLine;
use casrap_common::stats::{gmean, mean};

const SIZE: (u32, u32) = (1100, 650);
const FONT: &str = "sans-serif";
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn init_font() -> Result<()> {
    static INIT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *INIT.get_or_init(|| {
        plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            include_bytes!("../../assets/DejaVuSansCondensed.ttf"),
        )
        .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::process("plots", "the embedded font does not load"))
    }
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Records { path: path.into(), reason: format!("drawing: {e}") }
}

/// The legend box every chart uses.
fn draw_legend<'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, CT>,
    position: SeriesLabelPosition,
    path: &Path,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(|e| plot_err(path, e))
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mark {
    Line,
    Dots,
    /// A medium circle (one summary point).
    Point,
    /// A large triangle (an operating point).
    Big,
}

/// One named series of an x-y chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub mark: Mark,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>, mark: Mark) -> Self {
        Self {
            name: name.into(),
            points: points.into_iter().filter(|(x, y)| x.is_finite() && y.is_finite()).collect(),
            mark,
        }
    }
}

fn range(values: impl Iterator<Item = f64>, include_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if include_zero {
        lo = lo.min(0.0);
        hi = hi.max(0.0);
    }
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.06).max(1e-9);
    (lo - pad, hi + pad)
}

/// An x-y chart with a legend.
pub fn xy(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<()> {
    xy_at(path, title, x_label, y_label, series, SeriesLabelPosition::UpperRight)
}

/// [`xy`] with the legend at `legend`.
pub fn xy_at(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    legend: SeriesLabelPosition,
) -> Result<()> {
    init_font()?;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let (x0, x1) = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)), false);
    let (y0, y1) = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)), false);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 26))
        .margin(18)
        .x_label_area_size(55)
        .y_label_area_size(90)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| plot_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 19))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| plot_err(path, e))?;
    for (i, s) in series.iter().enumerate() {
        let c = color(i);
        let drawn = match s.mark {
            Mark::Line => chart
                .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
                .map_err(|e| plot_err(path, e))?,
            Mark::Dots => chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, c.mix(0.6).filled())))
                .map_err(|e| plot_err(path, e))?,
            Mark::Point => chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 8, c.filled())))
                .map_err(|e| plot_err(path, e))?,
            Mark::Big => chart
                .draw_series(s.points.iter().map(|&p| TriangleMarker::new(p, 11, c.filled())))
                .map_err(|e| plot_err(path, e))?,
        };
        drawn
            .label(s.name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], c.filled()));
    }
    draw_legend(&mut chart, legend, path)?;
    root.present().map_err(|e| plot_err(path, e))
}

/// Grouped bars: one cluster per category, one bar per group (with a legend).
pub fn bars(
    path: &Path,
    title: &str,
    y_label: &str,
    categories: &[String],
    groups: &[(String, Vec<f64>)],
) -> Result<()> {
    init_font()?;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let g = groups.len().max(1) as i32;
    let slot = g + 1;
    let total = categories.len() as i32 * slot;
    let (y0, y1) =
        range(groups.iter().flat_map(|(_, v)| v.iter().copied().filter(|x| x.is_finite())), true);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 26))
        .margin(18)
        .x_label_area_size(55)
        .y_label_area_size(90)
        .build_cartesian_2d((0..total.max(1)).into_segmented(), y0..y1)
        .map_err(|e| plot_err(path, e))?;
    let cats = categories.to_vec();
    let formatter = move |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(x) | SegmentValue::Exact(x) if x % slot == (g - 1) / 2 => {
            cats.get((x / slot) as usize).cloned().unwrap_or_default()
        }
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(total.max(1) as usize)
        .x_label_formatter(&formatter)
        .y_desc(y_label)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 19))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| plot_err(path, e))?;
    for (gi, (name, values)) in groups.iter().enumerate() {
        let c = color(gi);
        let rects =
            values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(move |(ci, &v)| {
                let x = ci as i32 * slot + gi as i32;
                Rectangle::new(
                    [(SegmentValue::Exact(x), 0.0), (SegmentValue::Exact(x + 1), v)],
                    c.filled(),
                )
            });
        chart
            .draw_series(rects)
            .map_err(|e| plot_err(path, e))?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], c.filled()));
    }
    if groups.len() > 1 || !groups.first().is_some_and(|(n, _)| n.is_empty()) {
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight, path)?;
    }
    root.present().map_err(|e| plot_err(path, e))
}

/// Least-squares line through `points`, drawn over their x range.
pub fn trendline(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let pts: Vec<(f64, f64)> =
        points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    if pts.len() < 2 {
        return Vec::new();
    }
    let n = pts.len() as f64;
    let (mx, my) =
        (pts.iter().map(|p| p.0).sum::<f64>() / n, pts.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let (lo, hi) =
        pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| (l.min(p.0), h.max(p.0)));
    vec![(lo, my + slope * (lo - mx)), (hi, my + slope * (hi - mx))]
}

fn moving_mean(v: &[f64], window: usize) -> Vec<(f64, f64)> {
    (0..v.len()).map(|i| (i as f64 + 1.0, mean(&v[i.saturating_sub(window - 1)..=i]))).collect()
}

/// Writes every plot of a training run into `dir`; returns their paths. `training` is the
/// learner's `training.jsonl` (for the loss plot), when present.
pub fn training_run(
    dir: &Path,
    episodes: &[Episode],
    summary: &Summary,
    training: Option<&[TrainingLine]>,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = Vec::new();
    let mut emit = |name: &str, f: &dyn Fn(&Path) -> Result<()>| -> Result<()> {
        let p = dir.join(name);
        f(&p)?;
        out.push(p);
        Ok(())
    };
    let ordered = by_time(episodes);
    let idx = |i: usize| i as f64 + 1.0;
    let per_episode = |f: &dyn Fn(&Episode) -> f64| -> Vec<(f64, f64)> {
        ordered.iter().enumerate().map(|(i, e)| (idx(i), f(e))).collect()
    };

    emit("tokens_per_s.png", &|p| {
        xy(
            p,
            "Decode speed per episode",
            "episode",
            "decode tokens/s",
            &[
                Series::new("dense", per_episode(&|e| e.dense.decode_tokens_per_s), Mark::Dots),
                Series::new("pruned", per_episode(&|e| e.pruned.decode_tokens_per_s), Mark::Dots),
            ],
        )
    })?;
    emit("inference_time.png", &|p| {
        xy(
            p,
            "Inference time per episode (prefill + decode, median run)",
            "episode",
            "milliseconds",
            &[
                Series::new("dense", per_episode(&|e| e.dense.total_ms()), Mark::Dots),
                Series::new("pruned", per_episode(&|e| e.pruned.total_ms()), Mark::Dots),
            ],
        )
    })?;
    emit("perplexity.png", &|p| {
        let (d, q) = (per_episode(&|e| e.dense.ppl), per_episode(&|e| e.pruned.ppl));
        xy(
            p,
            "Perplexity on prompt + dense continuation, per episode",
            "episode",
            "perplexity",
            &[
                Series::new("dense", d.clone(), Mark::Dots),
                Series::new("pruned", q.clone(), Mark::Dots),
                Series::new("dense trend", trendline(&d), Mark::Line),
                Series::new("pruned trend", trendline(&q), Mark::Line),
            ],
        )
    })?;
    emit("length_vs_perplexity.png", &|p| {
        let pts = episodes
            .iter()
            .map(|e| (e.prompt_tokens as f64, e.prompt_perplexity))
            .collect::<Vec<_>>();
        xy(
            p,
            "Prompt length vs the dense model's prompt perplexity",
            "prompt tokens",
            "prompt perplexity",
            &[
                Series::new("prompts", pts.clone(), Mark::Dots),
                Series::new("trend", trendline(&pts), Mark::Line),
            ],
        )
    })?;
    let actions: Vec<String> = summary.per_action.iter().map(|r| r.action.clone()).collect();
    emit("action_usage.png", &|p| {
        let n = ordered.len();
        let groups: Vec<(String, Vec<f64>)> = (0..4)
            .map(|q| {
                let part = &ordered[q * n / 4..(q + 1) * n / 4];
                let counts = actions
                    .iter()
                    .map(|a| part.iter().filter(|e| &e.action == a).count() as f64)
                    .collect();
                (format!("episodes {}-{}", q * n / 4 + 1, (q + 1) * n / 4), counts)
            })
            .collect();
        bars(p, "Actions chosen, by quarter of the run", "episodes", &actions, &groups)
    })?;
    emit("time_per_action.png", &|p| {
        bars(
            p,
            "Inference time per action (median, prefill + decode)",
            "milliseconds",
            &actions,
            &[
                ("dense".into(), summary.per_action.iter().map(|r| r.dense_ms_median).collect()),
                ("pruned".into(), summary.per_action.iter().map(|r| r.pruned_ms_median).collect()),
            ],
        )
    })?;
    emit("perplexity_per_action.png", &|p| {
        bars(
            p,
            "Perplexity per action (median, on prompt + dense continuation)",
            "perplexity",
            &actions,
            &[
                ("dense".into(), summary.per_action.iter().map(|r| r.ppl_dense_median).collect()),
                ("pruned".into(), summary.per_action.iter().map(|r| r.ppl_pruned_median).collect()),
            ],
        )
    })?;
    emit("reward_epsilon.png", &|p| {
        let rewards: Vec<f64> = ordered.iter().map(|e| e.reward).collect();
        xy(
            p,
            "Reward (mean of the last 20 episodes) and exploration over the run",
            "episode",
            "reward / epsilon",
            &[
                Series::new("reward, moving mean", moving_mean(&rewards, 20), Mark::Line),
                Series::new("epsilon", per_episode(&|e| f64::from(e.epsilon)), Mark::Line),
                Series::new(
                    "reward",
                    ordered.iter().enumerate().map(|(i, e)| (idx(i), e.reward)).collect(),
                    Mark::Dots,
                ),
            ],
        )
    })?;
    if let Some(lines) = training.filter(|t| !t.is_empty()) {
        emit("training_loss.png", &|p| {
            let pts =
                lines.iter().map(|l| (l.updates as f64, l.loss.unwrap_or(f64::NAN))).collect();
            xy(
                p,
                "Double-DQN training loss (Huber, mean between published versions)",
                "updates",
                "loss",
                &[Series::new("loss", pts, Mark::Line)],
            )
        })?;
    }
    emit("quality_vs_speed.png", &|p| {
        let mut series: Vec<Series> = summary
            .per_action
            .iter()
            .map(|r| {
                Series::new(
                    r.action.clone(),
                    vec![(r.stats.speedup, r.stats.ppl_change_mean * 100.0)],
                    Mark::Point,
                )
            })
            .collect();
        let greedy: Vec<&Episode> = episodes.iter().filter(|e| !e.explored).collect();
        if !greedy.is_empty() {
            let sp = gmean(&greedy.iter().map(|e| e.speedup).collect::<Vec<_>>());
            let pc = mean(&greedy.iter().map(|e| e.ppl_change).collect::<Vec<_>>()) * 100.0;
            series.push(Series::new("policy (greedy episodes)", vec![(sp, pc)], Mark::Big));
        }
        xy_at(
            p,
            "Quality vs speed: each action (mean of its episodes) and the policy",
            "decode speedup (x)",
            "perplexity change (%)",
            &series,
            SeriesLabelPosition::UpperLeft,
        )
    })?;
    let hw: Vec<String> = summary.per_hardware.iter().map(|h| h.hardware.clone()).collect();
    emit("hardware_speedup.png", &|p| {
        let groups: Vec<(String, Vec<f64>)> = summary
            .per_hardware
            .iter()
            .map(|h| {
                (
                    h.hardware.clone(),
                    actions
                        .iter()
                        .map(|a| h.speedups.get(a).copied().unwrap_or(f64::NAN))
                        .collect(),
                )
            })
            .collect();
        bars(
            p,
            "Decode speedup per action on each hardware profile",
            "speedup (x)",
            &actions,
            &groups,
        )
    })?;
    emit("hardware_actions.png", &|p| {
        let groups: Vec<(String, Vec<f64>)> = summary
            .per_hardware
            .iter()
            .map(|h| {
                let n = h.stats.episodes.max(1) as f64;
                (
                    h.hardware.clone(),
                    actions
                        .iter()
                        .map(|a| h.actions.get(a).copied().unwrap_or(0) as f64 / n * 100.0)
                        .collect(),
                )
            })
            .collect();
        bars(
            p,
            &format!("Actions chosen per hardware profile ({} profiles)", hw.len()),
            "% of that hardware's episodes",
            &actions,
            &groups,
        )
    })?;
    if !summary.adaptation.is_empty() {
        let actions: Vec<String> = summary.per_action.iter().map(|r| r.action.clone()).collect();
        let cells: Vec<HeatCell> = summary
            .adaptation
            .iter()
            .map(|c| HeatCell {
                row: c.class.clone(),
                column: c.tokens.clone(),
                prompts: c.episodes,
                counts: c.chosen.clone(),
            })
            .collect();
        let p = dir.join("adaptation.png");
        heatmap(
            &p,
            "Greedy episodes: the policy's choice by budget class and prompt length",
            "prompt tokens",
            &actions,
            &cells,
        )?;
        out.push(p);
    }
    Ok(out)
}

/// The test run's quality-vs-speed plot: every fixed action, random, the oracle and the policy.
pub fn test_run(dir: &Path, summary: &super::policy_tables::TestSummary) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let series: Vec<Series> = summary
        .rows
        .iter()
        .map(|r| {
            let mark = if r.policy.starts_with("policy") { Mark::Big } else { Mark::Point };
            Series::new(r.policy.clone(), vec![(r.speedup, r.ppl_change_mean * 100.0)], mark)
        })
        .collect();
    let p = dir.join("quality_vs_speed.png");
    xy_at(
        &p,
        "Held-out prompts: quality vs speed of the policy and every baseline",
        "decode speedup (x)",
        "perplexity change (%)",
        &series,
        SeriesLabelPosition::UpperLeft,
    )?;
    let rewards = dir.join("mean_reward.png");
    let names: Vec<String> = summary.rows.iter().map(|r| r.policy.replace("always ", "")).collect();
    bars(
        &rewards,
        "Held-out prompts: mean reward per policy",
        "mean reward",
        &names,
        &[(String::new(), summary.rows.iter().map(|r| r.mean_reward).collect())],
    )?;
    let mut out = vec![p, rewards];
    if !summary.adaptation.is_empty() {
        let actions: Vec<String> = summary
            .rows
            .iter()
            .filter_map(|r| r.policy.strip_prefix("always ").map(str::to_string))
            .collect();
        let cells: Vec<HeatCell> = summary
            .adaptation
            .iter()
            .map(|c| HeatCell {
                row: c.class.clone(),
                column: c.tokens.clone(),
                prompts: c.prompts,
                counts: c.policy.clone(),
            })
            .collect();
        let path = dir.join("adaptation.png");
        heatmap(
            &path,
            "Held-out prompts: the policy's choice by budget class and prompt length",
            "prompt tokens",
            &actions,
            &cells,
        )?;
        out.push(path);
    }
    Ok(out)
}

/// One cell of [`heatmap`]: how often each action was chosen on its prompts.
pub struct HeatCell {
    pub row: String,
    pub column: String,
    pub prompts: usize,
    pub counts: std::collections::BTreeMap<String, usize>,
}

/// A grid of rows (budget classes) by columns (length buckets), in order of first appearance:
/// each cell takes the colour of its most chosen action (in `actions`' palette order), its
/// saturation the action's share, and names the action, its share and the prompt count.
pub fn heatmap(
    path: &Path,
    title: &str,
    x_label: &str,
    actions: &[String],
    cells: &[HeatCell],
) -> Result<()> {
    init_font()?;
    let mut rows: Vec<&str> = Vec::new();
    let mut cols: Vec<&str> = Vec::new();
    for c in cells {
        if !rows.contains(&c.row.as_str()) {
            rows.push(&c.row);
        }
        if !cols.contains(&c.column.as_str()) {
            cols.push(&c.column);
        }
    }
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let (nx, ny) = (cols.len().max(1) as i32, rows.len().max(1) as i32);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24))
        .margin(18)
        .x_label_area_size(55)
        .y_label_area_size(110)
        .build_cartesian_2d((0..nx).into_segmented(), (0..ny).into_segmented())
        .map_err(|e| plot_err(path, e))?;
    fn label(names: Vec<String>) -> impl Fn(&SegmentValue<i32>) -> String {
        move |v| match v {
            SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        }
    }
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (fx, fy) = (label(owned(&cols)), label(owned(&rows)));
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(nx as usize)
        .y_labels(ny as usize)
        .x_label_formatter(&fx)
        .y_label_formatter(&fy)
        .x_desc(x_label)
        .y_desc("budget class")
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 19))
        .draw()
        .map_err(|e| plot_err(path, e))?;
    for c in cells {
        let (Some(x), Some(y)) =
            (cols.iter().position(|&n| n == c.column), rows.iter().position(|&n| n == c.row))
        else {
            continue;
        };
        let (x, y) = (x as i32, y as i32);
        let Some((action, n)) = c.counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        else {
            continue;
        };
        let share = *n as f64 / c.prompts.max(1) as f64;
        let base = color(actions.iter().position(|a| a == action).unwrap_or(0));
        let mix = |v: u8| (255.0 - (255.0 - f64::from(v)) * (0.25 + 0.75 * share)) as u8;
        let fill = RGBColor(mix(base.0), mix(base.1), mix(base.2));
        chart
            .draw_series([Rectangle::new(
                [
                    (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                ],
                fill.filled(),
            )])
            .map_err(|e| plot_err(path, e))?;
        let text = format!("{action} {:.0}% (n={})", share * 100.0, c.prompts);
        chart
            .draw_series([Text::new(
                text,
                (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y)),
                (FONT, 15).into_font().color(&BLACK).pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Center,
                )),
            )])
            .map_err(|e| plot_err(path, e))?;
    }
    root.present().map_err(|e| plot_err(path, e))
}
