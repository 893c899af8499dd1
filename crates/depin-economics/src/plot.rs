//! Pictures of an estimate, as one SVG document (`depin estimate --plot FILE.svg`):
//!
//! 1. a fan chart of the running cash (p10/p50/p90 band and lines) with the zero line and
//!    the payback months marked;
//! 2. a tornado chart: how far the median cash at the window's end moves when one input
//!    goes to a low and a high value (electricity price, token price, utilisation or fill
//!    or site, uptime, hardware price), all other inputs and the random draws unchanged;
//! 3. a histogram of payback months over the paths, with the paths that never pay back.
//!
//! Drawn with `plotters`' SVG backend into a string: no files, no fonts, no system
//! libraries (text is left to the SVG viewer), so this module stays pure.

use crate::model::EstimateInputs;
use crate::sim::{Estimate, Simulation, estimate_many};
use crate::{EconomicsError, invalid};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// One bar of the tornado: the median cash at the window's end with one input low and
/// with it high.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TornadoBar {
    pub factor: String,
    pub low_label: String,
    pub low_cash_usd: f64,
    pub high_label: String,
    pub high_cash_usd: f64,
}

impl TornadoBar {
    /// How far the factor moves the result, USD.
    pub fn swing(&self) -> f64 {
        (self.high_cash_usd - self.low_cash_usd).abs()
    }
}

/// The tornado: the base case's median cash and the bars, widest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tornado {
    pub months: u32,
    pub base_cash_usd: f64,
    pub bars: Vec<TornadoBar>,
}

/// Runs the one-at-a-time variations of `i` over the same draws:
/// electricity price × 0.5 and × 1.5; token price × 0.5 and × 2; for a rented device its
/// utilisation fixed at the range's p10 and p90, for a storage node its fill rate so, for
/// a placed device its site at the spread's p10 and p90 (0 for a full cell is not a
/// "low" but the bad tail: it stays in the histogram); uptime 80% and 100%; hardware
/// price × 0.7 and × 1.3. The result is the p50 of the cash after the window.
pub fn tornado(i: &EstimateInputs, sim: Simulation) -> Result<Tornado, EconomicsError> {
    i.validate()?;
    let mut variants: Vec<(String, String, EstimateInputs, String, EstimateInputs)> = Vec::new();
    let vary = |f: &dyn Fn(&mut EstimateInputs)| {
        let mut x = i.clone();
        f(&mut x);
        x
    };
    let k = i.costs.kwh_price_usd;
    let k_hi = (k * 1.5).min(crate::model::MAX_KWH_PRICE_USD);
    variants.push((
        "electricity price".into(),
        format!("USD {}/kWh", crate::report::num(k * 0.5)),
        vary(&|x| x.costs.kwh_price_usd = k * 0.5),
        format!("USD {}/kWh", crate::report::num(k_hi)),
        vary(&|x| x.costs.kwh_price_usd = k_hi),
    ));
    let p = i.market.token_price_usd;
    variants.push((
        "token price".into(),
        format!("USD {}", crate::report::num(p * 0.5)),
        vary(&|x| x.market.token_price_usd = p * 0.5),
        format!("USD {}", crate::report::num(p * 2.0)),
        vary(&|x| x.market.token_price_usd = p * 2.0),
    ));
    if let Some(r) = &i.rental {
        let at = |u: f64| {
            vary(&|x| {
                let r = x.rental.as_mut().expect("cloned with a rental");
                (r.utilisation_p10, r.utilisation_p50, r.utilisation_p90) = (u, u, u);
            })
        };
        variants.push((
            "utilisation".into(),
            format!("{:.0}% rented", r.utilisation_p10 * 100.0),
            at(r.utilisation_p10),
            format!("{:.0}% rented", r.utilisation_p90 * 100.0),
            at(r.utilisation_p90),
        ));
    } else if let Some(s) = &i.storage {
        let at = |v: f64| {
            vary(&|x| {
                let s = x.storage.as_mut().expect("cloned with storage");
                (
                    s.ingress_tb_per_month_p10,
                    s.ingress_tb_per_month_p50,
                    s.ingress_tb_per_month_p90,
                ) = (v, v, v);
            })
        };
        variants.push((
            "fill rate (utilisation)".into(),
            format!("{} TB/month", s.ingress_tb_per_month_p10),
            at(s.ingress_tb_per_month_p10),
            format!("{} TB/month", s.ingress_tb_per_month_p90),
            at(s.ingress_tb_per_month_p90),
        ));
    } else if let Some(pl) = &i.placement {
        let at = |f: f64| {
            vary(&|x| {
                x.placement = None;
                x.rewards.tokens_per_month *= f;
            })
        };
        variants.push((
            "site".into(),
            format!("p10 site, {}×", crate::report::num(pl.spread_p10)),
            at(pl.spread_p10),
            format!("p90 site, {}×", crate::report::num(pl.spread_p90)),
            at(pl.spread_p90),
        ));
    }
    variants.push((
        "uptime".into(),
        "80%".into(),
        vary(&|x| x.rewards.uptime = 0.8),
        "100%".into(),
        vary(&|x| x.rewards.uptime = 1.0),
    ));
    let h = i.hardware.price_usd;
    variants.push((
        "hardware price".into(),
        format!("USD {}", crate::report::num(h * 0.7)),
        vary(&|x| x.hardware.price_usd = h * 0.7),
        format!("USD {}", crate::report::num(h * 1.3)),
        vary(&|x| x.hardware.price_usd = h * 1.3),
    ));
    let mut all = vec![i.clone()];
    for (_, _, lo, _, hi) in &variants {
        all.push(lo.clone());
        all.push(hi.clone());
    }
    let est = estimate_many(&all, sim)?;
    let cash = |k: usize| est[k].figures.cumulative_net_usd.p50;
    let mut bars: Vec<TornadoBar> = variants
        .into_iter()
        .enumerate()
        .map(|(n, (factor, low_label, _, high_label, _))| TornadoBar {
            factor,
            low_label,
            low_cash_usd: cash(1 + 2 * n),
            high_label,
            high_cash_usd: cash(2 + 2 * n),
        })
        .collect();
    bars.sort_by(|a, b| b.swing().total_cmp(&a.swing()));
    Ok(Tornado {
        months: i.months,
        base_cash_usd: cash(0),
        bars,
    })
}

fn plot_err<E: std::fmt::Debug>(e: E) -> EconomicsError {
    invalid("plot", format!("drawing the chart failed: {e:?}"))
}

const BAND: RGBColor = RGBColor(198, 219, 239);
const P10: RGBColor = RGBColor(203, 24, 29);
const P50: RGBColor = RGBColor(8, 81, 156);
const P90: RGBColor = RGBColor(35, 139, 69);
const GREY: RGBColor = RGBColor(90, 90, 90);

/// Chart width and height of each of the three panels, px.
pub const PANEL: (u32, u32) = (960, 440);

/// The three charts as one SVG document.
pub fn charts_svg(e: &Estimate, t: &Tornado) -> Result<String, EconomicsError> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (PANEL.0, PANEL.1 * 3)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let panels = root.split_evenly((3, 1));
        fan_chart(&panels[0], e)?;
        tornado_chart(&panels[1], t)?;
        payback_histogram(&panels[2], e)?;
        root.present().map_err(plot_err)?;
    }
    Ok(buf)
}

type Area<'a, 'b> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn fan_chart(area: &Area<'_, '_>, e: &Estimate) -> Result<(), EconomicsError> {
    let f = &e.figures;
    let start = -e.inputs.hardware.capital_usd();
    let series = &f.cumulative_net_usd_by_month;
    let pts = |q: fn(&crate::Spread) -> f64| -> Vec<(f64, f64)> {
        std::iter::once((0.0, start))
            .chain(
                series
                    .iter()
                    .map(|m| (m.month as f64, q(&m.cumulative_net_usd))),
            )
            .collect()
    };
    let (p10, p50, p90) = (pts(|s| s.p10), pts(|s| s.p50), pts(|s| s.p90));
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for (_, y) in p10.iter().chain(&p90) {
        lo = lo.min(*y);
        hi = hi.max(*y);
    }
    let pad = ((hi - lo) * 0.05).max(1.0);
    let months = series.last().map_or(1, |m| m.month) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "{}: running cash, USD (p10 bad, p50, p90 good; {} paths)",
                e.inputs.hardware.name, e.simulation.paths
            ),
            ("sans-serif", 20),
        )
        .margin(14)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..months, (lo - pad)..(hi + pad))
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("month")
        .y_desc("cash, USD")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(plot_err)?;
    let band: Vec<(f64, f64)> = p90.iter().chain(p10.iter().rev()).copied().collect();
    chart
        .draw_series(std::iter::once(Polygon::new(band, BAND.filled())))
        .map_err(plot_err)?
        .label("p10–p90")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], BAND.filled()));
    for (pts, color, name) in [
        (p90, P90, "p90 (good)"),
        (p50, P50, "p50"),
        (p10, P10, "p10 (bad)"),
    ] {
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(plot_err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, 0.0), (months, 0.0)],
            BLACK.stroke_width(1),
        ))
        .map_err(plot_err)?
        .label("zero: paid back above it")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK));
    let pb = &f.payback_months;
    for (m, color, name) in [
        (pb.p90, P90, "payback p90"),
        (pb.p50, P50, "payback p50"),
        (pb.p10, P10, "payback p10"),
    ] {
        if let Some(m) = m {
            chart
                .draw_series(LineSeries::new(
                    vec![(m, lo - pad), (m, hi + pad)],
                    color.stroke_width(1),
                ))
                .map_err(plot_err)?;
            // Right of the line, or left of it near the right edge.
            let x = if m > months * 0.75 {
                m - months * 0.2
            } else {
                m + months * 0.005
            };
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("{name}: month {m:.0}"),
                    (x, hi + pad * 0.2),
                    ("sans-serif", 13).into_font().color(&color),
                )))
                .map_err(plot_err)?;
        }
    }
    if pb.p50.is_none() {
        chart
            .draw_series(std::iter::once(Text::new(
                "the median path never pays back",
                (months * 0.4, hi + pad * 0.2),
                ("sans-serif", 14).into_font().color(&P10),
            )))
            .map_err(plot_err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(GREY)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

fn tornado_chart(area: &Area<'_, '_>, t: &Tornado) -> Result<(), EconomicsError> {
    let n = t.bars.len().max(1);
    let (mut lo, mut hi) = (t.base_cash_usd, t.base_cash_usd);
    for b in &t.bars {
        lo = lo.min(b.low_cash_usd.min(b.high_cash_usd));
        hi = hi.max(b.low_cash_usd.max(b.high_cash_usd));
    }
    let pad = ((hi - lo) * 0.25).max(1.0);
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "what moves the median cash after {} months most (base USD {})",
                t.months,
                crate::report::num(t.base_cash_usd)
            ),
            ("sans-serif", 20),
        )
        .margin(14)
        .x_label_area_size(36)
        .y_label_area_size(10)
        .build_cartesian_2d((lo - pad)..(hi + pad), 0.0..n as f64)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_desc("median cash after the window, USD (red: worse than the base case, green: better)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(plot_err)?;
    let label = ("sans-serif", 13).into_font().color(&BLACK);
    for (k, b) in t.bars.iter().enumerate() {
        // Widest at the top.
        let y0 = (n - 1 - k) as f64 + 0.2;
        let y1 = y0 + 0.6;
        // Red where the result is worse than the base case, green where better.
        for v in [b.low_cash_usd, b.high_cash_usd] {
            let (a, z, color) = if v < t.base_cash_usd {
                (v, t.base_cash_usd, P10)
            } else {
                (t.base_cash_usd, v, P90)
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(a, y0), (z, y1)],
                    color.mix(0.55).filled(),
                )))
                .map_err(plot_err)?;
        }
        let left = b.low_cash_usd.min(b.high_cash_usd);
        let right = b.low_cash_usd.max(b.high_cash_usd);
        let (left_label, right_label) = if b.low_cash_usd <= b.high_cash_usd {
            (&b.low_label, &b.high_label)
        } else {
            (&b.high_label, &b.low_label)
        };
        chart
            .draw_series([
                Text::new(
                    format!("{}: {left_label}", b.factor),
                    (left - pad * 0.95, y1 - 0.1),
                    label.clone(),
                ),
                Text::new(
                    right_label.clone(),
                    (right + pad * 0.03, y1 - 0.1),
                    label.clone(),
                ),
            ])
            .map_err(plot_err)?;
    }
    chart
        .draw_series(LineSeries::new(
            vec![(t.base_cash_usd, 0.0), (t.base_cash_usd, n as f64)],
            BLACK.stroke_width(1),
        ))
        .map_err(plot_err)?;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, 0.0), (0.0, n as f64)],
            GREY.stroke_width(1),
        ))
        .map_err(plot_err)?;
    Ok(())
}

fn payback_histogram(area: &Area<'_, '_>, e: &Estimate) -> Result<(), EconomicsError> {
    let Some(h) = &e.figures.payback_histogram else {
        return Err(invalid(
            "plot",
            "the estimate has no payback histogram (a single-device estimate has one)",
        ));
    };
    // Bins of `width` months, then one bar for "never".
    let last = h.paths_by_month.len().max(1);
    let width = last.div_ceil(40).max(1);
    let bins: Vec<u32> = h
        .paths_by_month
        .chunks(width)
        .map(|c| c.iter().sum())
        .collect();
    let never_x = bins.len() as f64 + 1.0;
    let top = bins
        .iter()
        .copied()
        .chain([h.never])
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let paths = e.simulation.paths;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "payback month over {paths} paths ({} never within the horizon)",
                h.never
            ),
            ("sans-serif", 20),
        )
        .margin(14)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..never_x + 1.0, 0.0..top * 1.1)
        .map_err(plot_err)?;
    let w = width as f64;
    chart
        .configure_mesh()
        .x_desc(format!("payback month (bars of {width}); right: never"))
        .y_desc("paths")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_label_formatter(&move |x| {
            if *x >= never_x {
                "never".into()
            } else {
                format!("{:.0}", x * w)
            }
        })
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(plot_err)?;
    chart
        .draw_series(bins.iter().enumerate().map(|(k, c)| {
            Rectangle::new(
                [(k as f64, 0.0), (k as f64 + 0.9, *c as f64)],
                P50.mix(0.7).filled(),
            )
        }))
        .map_err(plot_err)?
        .label("pays back in that month")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], P50.mix(0.7).filled()));
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(never_x, 0.0), (never_x + 0.9, h.never as f64)],
            P10.mix(0.7).filled(),
        )))
        .map_err(plot_err)?
        .label("never pays back (right)")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], P10.mix(0.7).filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(GREY)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}
